"""AuditRun (one pass of the status audit over an office) and the discrepancies it found."""

from enum import StrEnum

from tortoise import fields
from tortoise.indexes import Index
from tortoise.models import Model

from api.core.jobs import JobState


class AuditTrigger(StrEnum):
    NIGHTLY = "NIGHTLY"
    MANUAL = "MANUAL"


class DiscrepancyKind(StrEnum):
    # INACTIVE set by a person, yet the contact engaged after that (R10 leaves it inactive).
    INACTIVE_BUT_ENGAGED = "INACTIVE_BUT_ENGAGED"
    # The CRM owner id belongs to a deactivated user of the office.
    OWNER_DEACTIVATED = "OWNER_DEACTIVATED"
    # The same address on several contacts of the office.
    DUPLICATE_EMAIL = "DUPLICATE_EMAIL"
    INVALID_EMAIL = "INVALID_EMAIL"


class AuditRun(Model):
    id = fields.BigIntField(primary_key=True)
    office = fields.ForeignKeyField(
        "models.Office", related_name="audit_runs", on_delete=fields.CASCADE
    )
    trigger = fields.CharEnumField(AuditTrigger, max_length=8)
    # The office-local night a nightly run belongs to; unique, so two clocks enqueue it once.
    night = fields.DateField(null=True)
    dry_run = fields.BooleanField(default=False)
    requested_by = fields.ForeignKeyField(
        "models.User", related_name=False, null=True, on_delete=fields.SET_NULL
    )
    state = fields.CharEnumField(JobState, max_length=8, default=JobState.QUEUED)
    created_at = fields.DatetimeField(auto_now_add=True)
    # Last handed to the broker; a QUEUED run not handed over for a while is sent again.
    enqueued_at = fields.DatetimeField(null=True)
    started_at = fields.DatetimeField(null=True)
    finished_at = fields.DatetimeField(null=True)
    at_risk = fields.IntField(default=0)
    at_risk_flagged = fields.IntField(default=0)
    at_risk_cleared = fields.IntField(default=0)
    stale = fields.IntField(default=0)
    no_status = fields.IntField(default=0)
    auto_inactivated = fields.IntField(default=0)
    discrepancies = fields.IntField(default=0)
    # Status counts after the run, the points of the office's status trend.
    active_count = fields.IntField(default=0)
    inactive_count = fields.IntField(default=0)
    error = fields.CharField(max_length=500, null=True)

    class Meta:
        table = "audit_run"
        unique_together = (("office", "night"),)
        indexes = [Index(fields=("office_id", "created_at"), name="audit_run_office_created")]


class Discrepancy(Model):
    id = fields.BigIntField(primary_key=True)
    office = fields.ForeignKeyField("models.Office", related_name=False, on_delete=fields.CASCADE)
    run = fields.ForeignKeyField("models.AuditRun", related_name="found", on_delete=fields.CASCADE)
    contact = fields.ForeignKeyField("models.Contact", related_name=False, on_delete=fields.CASCADE)
    kind = fields.CharEnumField(DiscrepancyKind, max_length=24)

    class Meta:
        table = "discrepancy"
        indexes = [Index(fields=("run_id", "id"), name="discrepancy_run")]
