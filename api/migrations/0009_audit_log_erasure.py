"""The audit log of every privileged action (its own home now, api.auditlog): a `target` and
`details` on each entry, more actions, an index for reading one action; and `erased_at` on
contacts (GDPR erasure).

The action column is a VARCHAR(16) that already holds every new value; only its description
(the enum's values) changes. PostgreSQL keeps that as a column comment. SQLite has no
comments, and Tortoise would rebuild the whole audit_log table there (dropping its index on
the way) to change nothing, so on SQLite that step only moves the recorded model state.
"""

from orjson import loads
from tortoise import fields, migrations
from tortoise.fields.data import JSON_DUMPS
from tortoise.indexes import Index
from tortoise.migrations import operations as ops

from api.auditlog.models import AuditAction


class AlterFieldDescription(ops.AlterField):
    """AlterField for a change of description alone: the comment on PostgreSQL, no DDL elsewhere."""

    async def database_forward(self, app_label, old_state, new_state, state_editor=None):
        if state_editor is not None and state_editor.client.capabilities.dialect == "postgres":
            await super().database_forward(app_label, old_state, new_state, state_editor)

    async def database_backward(self, app_label, old_state, new_state, state_editor=None):
        if state_editor is not None and state_editor.client.capabilities.dialect == "postgres":
            await super().database_backward(app_label, old_state, new_state, state_editor)


class Migration(migrations.Migration):
    dependencies = [("models", "0008_user_token_version")]

    initial = False

    operations = [
        ops.AlterModelOptions(
            name="AuditLogEntry",
            options={
                "table": "audit_log",
                "app": "models",
                "indexes": [
                    Index(fields=["office_id", "id"], name="audit_log_office"),
                    Index(fields=["office_id", "action", "id"], name="audit_log_office_action"),
                ],
                "pk_attr": "id",
                "table_description": (
                    "Who did which privileged thing, to what, and when. Rows are only ever inserted."
                ),
            },
        ),
        AlterFieldDescription(
            model_name="AuditLogEntry",
            name="action",
            field=fields.CharEnumField(
                description="EXPORT: EXPORT\nUSER_CREATED: USER_CREATED\nUSER_CHANGED: USER_CHANGED\nPASSWORD_RESET: PASSWORD_RESET\nCONTACT_DELETED: CONTACT_DELETED\nCONTACT_RESTORED: CONTACT_RESTORED\nCONTACT_ERASED: CONTACT_ERASED\nSETTINGS_CHANGED: SETTINGS_CHANGED\nCAMPAIGN_SENT: CAMPAIGN_SENT",
                enum_type=AuditAction,
                max_length=16,
            ),
        ),
        ops.AddField(
            model_name="AuditLogEntry",
            name="details",
            field=fields.JSONField(null=True, encoder=JSON_DUMPS, decoder=loads),
        ),
        ops.AddField(
            model_name="AuditLogEntry",
            name="target",
            field=fields.CharField(null=True, max_length=64),
        ),
        ops.AddIndex(
            model_name="AuditLogEntry",
            index=Index(fields=["office_id", "action", "id"], name="audit_log_office_action"),
        ),
        ops.AddField(
            model_name="Contact",
            name="erased_at",
            field=fields.DatetimeField(null=True, auto_now=False, auto_now_add=False),
        ),
    ]
