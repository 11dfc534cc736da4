"""Audience: a saved contact filter in one account (R13). System audiences are rows too,
created on first use for each account (`system_key` says which), so campaigns can name them."""

from enum import StrEnum

from tortoise import fields
from tortoise.indexes import Index
from tortoise.models import Model


class SendAccount(StrEnum):
    USER = "USER"
    OFFICE = "OFFICE"


class AudienceKind(StrEnum):
    SYSTEM = "SYSTEM"
    CUSTOM = "CUSTOM"


class Audience(Model):
    id = fields.BigIntField(primary_key=True)
    office = fields.ForeignKeyField(
        "models.Office", related_name="audiences", on_delete=fields.CASCADE
    )
    account = fields.CharEnumField(SendAccount, max_length=8)
    # The user whose account holds it; null for the office-wide account.
    owner = fields.ForeignKeyField(
        "models.User", related_name="audiences", null=True, on_delete=fields.CASCADE
    )
    # "office" or "user:<id>": with system_key, makes each account's system audiences unique
    # (a unique index over a nullable owner would let NULLs repeat).
    account_key = fields.CharField(max_length=32)
    kind = fields.CharEnumField(AudienceKind, max_length=8)
    system_key = fields.CharField(max_length=20, null=True)
    name = fields.CharField(max_length=200)
    # A custom audience's ContactFilterSpec.to_dict() as JSON; system ones derive theirs from
    # system_key, so their definition can change with the code.
    conditions = fields.JSONField(default=dict)
    created_by = fields.ForeignKeyField(
        "models.User", related_name=False, null=True, on_delete=fields.SET_NULL
    )
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)
    # Deleted custom audiences stay for the campaigns that were sent to them.
    deleted_at = fields.DatetimeField(null=True)

    class Meta:
        table = "audience"
        unique_together = (("office", "account_key", "system_key"),)
        indexes = [Index(fields=("office_id", "account_key", "id"), name="audience_account")]
