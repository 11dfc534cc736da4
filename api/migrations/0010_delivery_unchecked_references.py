"""Delivery rows are no longer checked against campaign, contact, office and user by foreign
key triggers: the dispatcher's INSERT … SELECT takes every reference from those tables in the
same statement, and the per-row checks were half the time of a 100,000-recipient dispatch.

PostgreSQL drops the constraints. On SQLite (small offices) Tortoise would rebuild the table
to change them, so there they stay; the recorded model state moves forward on both.
"""

from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise.fields.base import OnDelete
from tortoise import fields
from tortoise.indexes import Index


REFERENCES = {
    "campaign_id": "campaign(id) ON DELETE CASCADE",
    "contact_id": "contact(id) ON DELETE CASCADE",
    "office_id": "office(id) ON DELETE CASCADE",
    "sender_id": "app_user(id) ON DELETE SET NULL",
}


class StateOnly(ops.AlterField):
    """The model state changes; the table does not (see drop_constraints)."""

    async def database_forward(self, app_label, old_state, new_state, state_editor=None):
        return None

    async def database_backward(self, app_label, old_state, new_state, state_editor=None):
        return None


async def drop_constraints(apps, schema_editor):
    if schema_editor.client.capabilities.dialect != "postgres":
        return
    drops = ", ".join(f"DROP CONSTRAINT IF EXISTS delivery_{c}_fkey" for c in REFERENCES)
    await schema_editor.client.execute_script(f"ALTER TABLE delivery {drops};")


async def add_constraints(apps, schema_editor):
    if schema_editor.client.capabilities.dialect != "postgres":
        return
    adds = ", ".join(
        f"ADD CONSTRAINT delivery_{c}_fkey FOREIGN KEY ({c}) REFERENCES {target}"
        for c, target in REFERENCES.items()
    )
    await schema_editor.client.execute_script(f"ALTER TABLE delivery {adds};")


class Migration(migrations.Migration):
    dependencies = [("models", "0009_audit_log_erasure")]

    initial = False

    operations = [
        ops.AlterModelOptions(
            name="Delivery",
            options={
                "table": "delivery",
                "app": "models",
                "unique_together": (("campaign", "contact"),),
                "indexes": [Index(fields=["campaign_id", "state"], name="delivery_campaign_state")],
                "pk_attr": "id",
                "table_description": "One row per contact a send considered. Written a hundred thousand at a time by the",
            },
        ),
        StateOnly(
            model_name="Delivery",
            name="campaign",
            field=fields.ForeignKeyField(
                "models.Campaign",
                source_field="campaign_id",
                db_constraint=False,
                to_field="id",
                related_name="deliveries",
                on_delete=OnDelete.CASCADE,
            ),
        ),
        StateOnly(
            model_name="Delivery",
            name="contact",
            field=fields.ForeignKeyField(
                "models.Contact",
                source_field="contact_id",
                db_constraint=False,
                to_field="id",
                related_name="deliveries",
                on_delete=OnDelete.CASCADE,
            ),
        ),
        StateOnly(
            model_name="Delivery",
            name="office",
            field=fields.ForeignKeyField(
                "models.Office",
                source_field="office_id",
                db_constraint=False,
                to_field="id",
                related_name=False,
                on_delete=OnDelete.CASCADE,
            ),
        ),
        StateOnly(
            model_name="Delivery",
            name="sender",
            field=fields.ForeignKeyField(
                "models.User",
                source_field="sender_id",
                null=True,
                db_constraint=False,
                to_field="id",
                related_name=False,
                on_delete=OnDelete.SET_NULL,
            ),
        ),
        ops.RunPython(drop_constraints, add_constraints),
    ]
