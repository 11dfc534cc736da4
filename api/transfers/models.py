"""ImportJob and ExportJob (R12, R21)."""

from enum import StrEnum

from tortoise import fields
from tortoise.indexes import Index
from tortoise.models import Model

# The audit log lives in api.auditlog now; migration 0004, written when it lived here, and
# older importers still find it under this module.
from api.auditlog.models import AuditAction, AuditLogEntry  # noqa: F401
from api.core.jobs import JobState


class ImportSource(StrEnum):
    GRAPHQL = "GRAPHQL"
    CSV = "CSV"
    CLI = "CLI"


class ImportJob(Model):
    id = fields.BigIntField(primary_key=True)
    office = fields.ForeignKeyField("models.Office", related_name=False, on_delete=fields.CASCADE)
    requested_by = fields.ForeignKeyField(
        "models.User", related_name=False, null=True, on_delete=fields.SET_NULL
    )
    source = fields.CharEnumField(ImportSource, max_length=8)
    file_name = fields.CharField(max_length=255, null=True)
    # The rows as received, canonical JSON ([{"external_id": …}, …]), so any worker on any
    # machine can carry the job out.
    payload = fields.TextField()
    state = fields.CharEnumField(JobState, max_length=8, default=JobState.QUEUED)
    total = fields.IntField(default=0)
    processed = fields.IntField(default=0)
    created = fields.IntField(default=0)
    updated = fields.IntField(default=0)
    unassigned = fields.IntField(default=0)
    error_count = fields.IntField(default=0)
    # Header names the file carried that no column maps to (reported, not fatal).
    unknown_columns = fields.JSONField(default=list)
    created_at = fields.DatetimeField(auto_now_add=True)
    enqueued_at = fields.DatetimeField(null=True)
    started_at = fields.DatetimeField(null=True)
    finished_at = fields.DatetimeField(null=True)

    class Meta:
        table = "import_job"
        indexes = [Index(fields=("office_id", "id"), name="import_job_office")]


class ImportRowError(Model):
    id = fields.BigIntField(primary_key=True)
    job = fields.ForeignKeyField(
        "models.ImportJob", related_name="row_errors", on_delete=fields.CASCADE
    )
    row = fields.IntField()
    field = fields.CharField(max_length=64, null=True)
    message = fields.CharField(max_length=500)

    class Meta:
        table = "import_row_error"
        indexes = [Index(fields=("job_id", "row"), name="import_row_error_job")]


class ExportJob(Model):
    id = fields.BigIntField(primary_key=True)
    office = fields.ForeignKeyField("models.Office", related_name=False, on_delete=fields.CASCADE)
    requested_by = fields.ForeignKeyField(
        "models.User", related_name=False, null=True, on_delete=fields.SET_NULL
    )
    # The ContactFilterSpec as given (to_dict form), applied with the requester's visibility.
    contact_filter = fields.JSONField(default=dict)
    state = fields.CharEnumField(JobState, max_length=8, default=JobState.QUEUED)
    row_count = fields.IntField(null=True)
    # Relative to DATA_DIR; the file holds an unguessable part so its name is no key.
    file_path = fields.CharField(max_length=255, null=True)
    created_at = fields.DatetimeField(auto_now_add=True)
    enqueued_at = fields.DatetimeField(null=True)
    started_at = fields.DatetimeField(null=True)
    finished_at = fields.DatetimeField(null=True)

    class Meta:
        table = "export_job"
        indexes = [Index(fields=("office_id", "id"), name="export_job_office")]
