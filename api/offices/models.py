"""Office model."""

from tortoise import fields
from tortoise.models import Model

DEFAULT_RISK_DAYS = 90
DEFAULT_STALE_DAYS = 180


class Office(Model):
    id = fields.BigIntField(primary_key=True)
    name = fields.CharField(max_length=200, unique=True)
    timezone = fields.CharField(max_length=64, default="UTC")
    risk_days = fields.IntField(default=DEFAULT_RISK_DAYS)
    stale_days = fields.IntField(default=DEFAULT_STALE_DAYS)
    # None: the nightly audit never moves contacts to INACTIVE by itself.
    auto_inactivate_days = fields.IntField(null=True)
    # From and Reply-To of OFFICE campaigns; MAIL_FROM when unset.
    sender_email = fields.CharField(max_length=254, null=True)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "office"
