"""Company, Contact, StatusChange (append-only) and Activity models."""

from enum import StrEnum

from tortoise import fields
from tortoise.indexes import Index
from tortoise.models import Model


class ContactStatus(StrEnum):
    ACTIVE = "ACTIVE"
    INACTIVE = "INACTIVE"


class StatusSource(StrEnum):
    USER = "USER"
    IMPORT = "IMPORT"
    ENGAGEMENT = "ENGAGEMENT"
    AUDIT = "AUDIT"


class OwnerSource(StrEnum):
    CRM = "CRM"
    MANUAL = "MANUAL"


class ActivityKind(StrEnum):
    EMAIL_SENT = "EMAIL_SENT"
    EMAIL_OPENED = "EMAIL_OPENED"
    EMAIL_CLICKED = "EMAIL_CLICKED"
    EMAIL_REPLIED = "EMAIL_REPLIED"
    CALL = "CALL"
    TASK = "TASK"
    MEETING = "MEETING"
    WEBINAR_ATTENDED = "WEBINAR_ATTENDED"
    DEAL = "DEAL"
    # The contact used the unsubscribe link of a campaign message (R17); not engagement.
    UNSUBSCRIBED = "UNSUBSCRIBED"


# The contact acted (glossary: engagement); these drive R10.
ENGAGEMENT_KINDS = frozenset(
    {
        ActivityKind.EMAIL_OPENED,
        ActivityKind.EMAIL_CLICKED,
        ActivityKind.EMAIL_REPLIED,
        ActivityKind.WEBINAR_ATTENDED,
    }
)


class Company(Model):
    id = fields.BigIntField(primary_key=True)
    office = fields.ForeignKeyField(
        "models.Office", related_name="companies", on_delete=fields.CASCADE
    )
    name = fields.CharField(max_length=200)
    # Lower-cased name: "ACME" and "Acme" are one company.
    name_key = fields.CharField(max_length=200)

    class Meta:
        table = "company"
        unique_together = (("office", "name_key"),)


class Contact(Model):
    id = fields.BigIntField(primary_key=True)
    office = fields.ForeignKeyField(
        "models.Office", related_name="contacts", on_delete=fields.CASCADE
    )
    external_id = fields.CharField(max_length=100, null=True)
    first_name = fields.CharField(max_length=200)
    last_name = fields.CharField(max_length=200)
    email = fields.CharField(max_length=254, null=True)
    phone = fields.CharField(max_length=40, null=True)
    company = fields.ForeignKeyField(
        "models.Company", related_name="contacts", null=True, on_delete=fields.SET_NULL
    )
    crm_owner_id = fields.CharField(max_length=100, null=True)
    owner = fields.ForeignKeyField(
        "models.User", related_name="contacts", null=True, on_delete=fields.SET_NULL
    )
    owner_source = fields.CharEnumField(OwnerSource, max_length=8, null=True)
    status = fields.CharEnumField(ContactStatus, max_length=8, null=True)
    # Source of the current status: R10 treats INACTIVE set by AUDIT and by a person differently.
    status_source = fields.CharEnumField(StatusSource, max_length=16, null=True)
    status_updated_at = fields.DatetimeField(null=True)
    last_activity_at = fields.DatetimeField(null=True)
    at_risk_since = fields.DatetimeField(null=True)
    unsubscribed = fields.BooleanField(default=False)
    archived = fields.BooleanField(default=False)
    archived_at = fields.DatetimeField(null=True)
    # GDPR erasure: its personal data is gone for good; it stays archived, and counts.
    erased_at = fields.DatetimeField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)
    # Lower-cased "first last email company" for the `search` filter (trigram-indexed on PostgreSQL).
    search_text = fields.TextField(default="")

    class Meta:
        table = "contact"
        unique_together = (("office", "external_id"),)
        indexes = [
            Index(fields=("office_id", "archived", "owner_id", "id"), name="contact_office_owner"),
            Index(fields=("office_id", "archived", "status", "id"), name="contact_office_status"),
            Index(fields=("office_id", "company_id"), name="contact_office_company"),
            Index(fields=("office_id", "crm_owner_id"), name="contact_office_crm_owner"),
            Index(fields=("office_id", "at_risk_since"), name="contact_office_at_risk"),
            Index(fields=("office_id", "last_activity_at"), name="contact_office_last_activity"),
            Index(fields=("office_id", "status_updated_at"), name="contact_office_status_updated"),
            Index(fields=("office_id", "email"), name="contact_office_email"),
        ]


class StatusChange(Model):
    """One change of a contact's status. Rows are only ever inserted (R8)."""

    id = fields.BigIntField(primary_key=True)
    office = fields.ForeignKeyField(
        "models.Office", related_name="status_changes", on_delete=fields.CASCADE
    )
    contact = fields.ForeignKeyField(
        "models.Contact", related_name="status_changes", on_delete=fields.CASCADE
    )
    from_status = fields.CharEnumField(ContactStatus, max_length=8, null=True)
    to_status = fields.CharEnumField(ContactStatus, max_length=8, null=True)
    source = fields.CharEnumField(StatusSource, max_length=16)
    actor = fields.ForeignKeyField(
        "models.User", related_name=False, null=True, on_delete=fields.SET_NULL
    )
    reason = fields.CharField(max_length=500, null=True)
    at = fields.DatetimeField()

    class Meta:
        table = "status_change"
        indexes = [Index(fields=("contact_id", "at"), name="status_change_contact_at")]


class Activity(Model):
    id = fields.BigIntField(primary_key=True)
    office = fields.ForeignKeyField(
        "models.Office", related_name="activities", on_delete=fields.CASCADE
    )
    contact = fields.ForeignKeyField(
        "models.Contact", related_name="activities", on_delete=fields.CASCADE
    )
    kind = fields.CharEnumField(ActivityKind, max_length=20)
    at = fields.DatetimeField()
    note = fields.TextField(null=True)
    user = fields.ForeignKeyField(
        "models.User", related_name=False, null=True, on_delete=fields.SET_NULL
    )
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "activity"
        indexes = [Index(fields=("contact_id", "at", "id"), name="activity_contact_at")]
