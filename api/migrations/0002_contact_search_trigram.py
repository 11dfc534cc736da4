"""PostgreSQL only: a trigram index so the `search` filter (LIKE '%term%') stays fast on a large office."""

from tortoise import migrations
from tortoise.migrations import operations as ops


async def add_trigram_index(apps, schema_editor):
    if schema_editor.client.capabilities.dialect != "postgres":
        return
    await schema_editor.client.execute_script(
        "CREATE EXTENSION IF NOT EXISTS pg_trgm;"
        "CREATE INDEX IF NOT EXISTS contact_search_trgm ON contact"
        " USING gin ((search_text::varchar) gin_trgm_ops);"
    )


async def drop_trigram_index(apps, schema_editor):
    if schema_editor.client.capabilities.dialect == "postgres":
        await schema_editor.client.execute_script("DROP INDEX IF EXISTS contact_search_trgm;")


class Migration(migrations.Migration):
    dependencies = [("models", "0001_initial")]

    operations = [ops.RunPython(add_trigram_index, drop_trigram_index)]
