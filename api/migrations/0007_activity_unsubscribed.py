"""ActivityKind gains UNSUBSCRIBED (R17: an unsubscribe is recorded as an activity).

The column is a VARCHAR(20) that already holds the new value; only its description (the
enum's values) changes. PostgreSQL keeps that as a column comment. SQLite has no comments,
and Tortoise would rebuild the whole activity table there (dropping its index on the way) to
change nothing, so on SQLite this migration only moves the recorded model state forward.
"""

from tortoise import fields, migrations
from tortoise.migrations import operations as ops

from api.contacts.models import ActivityKind


class AlterFieldDescription(ops.AlterField):
    """AlterField for a change of description alone: the comment on PostgreSQL, no DDL elsewhere."""

    async def database_forward(self, app_label, old_state, new_state, state_editor=None):
        if state_editor is not None and state_editor.client.capabilities.dialect == "postgres":
            await super().database_forward(app_label, old_state, new_state, state_editor)

    async def database_backward(self, app_label, old_state, new_state, state_editor=None):
        if state_editor is not None and state_editor.client.capabilities.dialect == "postgres":
            await super().database_backward(app_label, old_state, new_state, state_editor)


class Migration(migrations.Migration):
    dependencies = [("models", "0006_audiences_campaigns")]

    initial = False

    operations = [
        AlterFieldDescription(
            model_name="Activity",
            name="kind",
            field=fields.CharEnumField(
                description="EMAIL_SENT: EMAIL_SENT\nEMAIL_OPENED: EMAIL_OPENED\nEMAIL_CLICKED: EMAIL_CLICKED\nEMAIL_REPLIED: EMAIL_REPLIED\nCALL: CALL\nTASK: TASK\nMEETING: MEETING\nWEBINAR_ATTENDED: WEBINAR_ATTENDED\nDEAL: DEAL\nUNSUBSCRIBED: UNSUBSCRIBED",
                enum_type=ActivityKind,
                max_length=20,
            ),
        ),
    ]
