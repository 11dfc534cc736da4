"""AuditLogEntry, one row per privileged action (the office's audit log), and its actions."""

from enum import StrEnum

from tortoise import fields
from tortoise.indexes import Index
from tortoise.models import Model


class AuditAction(StrEnum):
    # exportContacts (R12): the entry also keeps the filter and, once done, the row count.
    EXPORT = "EXPORT"
    USER_CREATED = "USER_CREATED"
    # Rights, role, active, crmAgentId or name of a user.
    USER_CHANGED = "USER_CHANGED"
    # An admin set another user's password.
    PASSWORD_RESET = "PASSWORD_RESET"  # noqa: S105 (an action's name, not a password)
    CONTACT_DELETED = "CONTACT_DELETED"
    CONTACT_RESTORED = "CONTACT_RESTORED"
    CONTACT_ERASED = "CONTACT_ERASED"
    SETTINGS_CHANGED = "SETTINGS_CHANGED"
    # An office-wide account's campaign handed to the workers.
    CAMPAIGN_SENT = "CAMPAIGN_SENT"


class AuditLogEntry(Model):
    """Who did which privileged thing, to what, and when. Rows are only ever inserted.

    An export's entry alone is written twice: its row count is filled in once it is done."""

    id = fields.BigIntField(primary_key=True)
    office = fields.ForeignKeyField("models.Office", related_name=False, on_delete=fields.CASCADE)
    actor = fields.ForeignKeyField(
        "models.User", related_name=False, null=True, on_delete=fields.SET_NULL
    )
    action = fields.CharEnumField(AuditAction, max_length=16)
    # The global id of what was acted on (a user, a contact, a campaign, an export job).
    target = fields.CharField(max_length=64, null=True)
    # What changed: field names and new flag or setting values. Never a password, and never
    # a contact's personal data: the log outlives an erasure.
    details = fields.JSONField(null=True)
    contact_filter = fields.JSONField(default=dict)
    row_count = fields.IntField(null=True)
    export_job = fields.ForeignKeyField(
        "models.ExportJob", related_name=False, null=True, on_delete=fields.SET_NULL
    )
    at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "audit_log"
        indexes = [
            Index(fields=("office_id", "id"), name="audit_log_office"),
            Index(fields=("office_id", "action", "id"), name="audit_log_office_action"),
        ]
