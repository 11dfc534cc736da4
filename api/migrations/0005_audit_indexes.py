"""PostgreSQL only: partial indexes that let a status audit which finds nothing to change
touch only index pages (the second run of a night on a million contacts stays within seconds).

Each predicate is written exactly as api/audit/service.py writes its statements; the planner
uses a partial index only when the query's WHERE implies the index's. tests/test_audit.py
checks the invalid-email predicate below against the service's.
"""

from tortoise import migrations
from tortoise.migrations import operations as ops

IDLE_SINCE = "(COALESCE(last_activity_at, created_at))"
INVALID_EMAIL = (
    "email NOT LIKE '%_@_%._%' OR email LIKE '%@%!_%' ESCAPE '!' OR email LIKE '%..%'"
    " OR email LIKE '.%' OR email LIKE '%.' OR email LIKE '%.@%' OR email LIKE '%@.%'"
    " OR email LIKE '%@-%' OR email LIKE '%-.%' OR email LIKE '%.-%' OR email LIKE '%-'"
    " OR email LIKE '% %' OR email LIKE '%@%@%'"
)
INDEXES = {
    "contact_audit_unflagged": (
        f"(office_id, {IDLE_SINCE}) WHERE archived = false AND at_risk_since IS NULL"
    ),
    "contact_audit_flagged": (
        f"(office_id, {IDLE_SINCE}) WHERE archived = false AND at_risk_since IS NOT NULL"
    ),
    "contact_audit_inactivatable": (
        f"(office_id, {IDLE_SINCE}) WHERE archived = false"
        " AND (status IS NULL OR status = 'ACTIVE')"
    ),
    "contact_audit_email": "(office_id, email) WHERE archived = false AND email IS NOT NULL",
    "contact_audit_invalid_email": (
        f"(office_id) WHERE archived = false AND email IS NOT NULL AND ({INVALID_EMAIL})"
    ),
}


async def add_indexes(apps, schema_editor):
    if schema_editor.client.capabilities.dialect != "postgres":
        return
    for name, definition in INDEXES.items():
        await schema_editor.client.execute_script(
            f"CREATE INDEX IF NOT EXISTS {name} ON contact {definition};"
        )


async def drop_indexes(apps, schema_editor):
    if schema_editor.client.capabilities.dialect != "postgres":
        return
    for name in INDEXES:
        await schema_editor.client.execute_script(f"DROP INDEX IF EXISTS {name};")


class Migration(migrations.Migration):
    dependencies = [("models", "0004_transfers")]

    operations = [ops.RunPython(add_indexes, drop_indexes)]
