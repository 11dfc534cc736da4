"""Each campaign message marks its delivery twice (SENDING, then the outcome). With no index
holding `state` (the unique (campaign_id, contact_id) index serves every per-campaign query)
and room left in each page (fillfactor 80, PostgreSQL), those marks are heap-only updates:
no index entry is written for them.
"""

from tortoise import migrations
from tortoise.migrations import operations as ops


async def leave_room(apps, schema_editor):
    if schema_editor.client.capabilities.dialect == "postgres":
        await schema_editor.client.execute_script("ALTER TABLE delivery SET (fillfactor = 80);")


async def fill_pages(apps, schema_editor):
    if schema_editor.client.capabilities.dialect == "postgres":
        await schema_editor.client.execute_script("ALTER TABLE delivery RESET (fillfactor);")


class Migration(migrations.Migration):
    dependencies = [("models", "0010_delivery_unchecked_references")]

    initial = False

    operations = [
        ops.RemoveIndex(
            model_name="Delivery",
            name="delivery_campaign_state",
            fields=None,
        ),
        ops.RunPython(leave_room, fill_pages),
    ]
