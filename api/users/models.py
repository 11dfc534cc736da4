"""User model."""

from enum import StrEnum

from tortoise import fields
from tortoise.models import Model


class Role(StrEnum):
    ADMIN = "ADMIN"
    AGENT = "AGENT"


class User(Model):
    id = fields.BigIntField(primary_key=True)
    office = fields.ForeignKeyField("models.Office", related_name="users", on_delete=fields.CASCADE)
    # Login is by email alone, so an address is unique across offices; stored lower-cased.
    email = fields.CharField(max_length=254, unique=True)
    name = fields.CharField(max_length=200)
    password_hash = fields.CharField(max_length=255)
    role = fields.CharEnumField(Role, max_length=16, default=Role.AGENT)
    crm_agent_id = fields.CharField(max_length=100, null=True)
    office_wide_access = fields.BooleanField(default=False)
    can_export = fields.BooleanField(default=False)
    can_delete = fields.BooleanField(default=False)
    active = fields.BooleanField(default=True)
    # Tokens carry the version they were issued under: logout and a password change raise it,
    # which revokes every token issued before at once.
    token_version = fields.IntField(default=0, db_default=0)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "app_user"
        unique_together = (("office", "crm_agent_id"),)

    @property
    def is_admin(self) -> bool:
        return self.role == Role.ADMIN
