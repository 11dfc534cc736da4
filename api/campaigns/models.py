"""Campaign, its deliveries (one row per contact the send considered: a recipient or a skip),
the batches the workers send them in, and the office's suppressed (bounced) addresses."""

from enum import StrEnum

from tortoise import fields
from tortoise.indexes import Index
from tortoise.models import Model

from api.audiences.models import SendAccount


class CampaignState(StrEnum):
    DRAFT = "DRAFT"
    SCHEDULED = "SCHEDULED"
    SENDING = "SENDING"
    SENT = "SENT"
    CANCELLED = "CANCELLED"
    FAILED = "FAILED"


class SenderMode(StrEnum):
    # From the account: the holder for USER campaigns, the office for OFFICE ones.
    ACCOUNT = "ACCOUNT"
    # OFFICE campaigns only: from each contact's own agent, or the office for unassigned ones.
    OWNER_OR_OFFICE = "OWNER_OR_OFFICE"


class DeliveryState(StrEnum):
    PENDING = "PENDING"
    # Handed to the mail server and not yet confirmed: one per connection at a time.
    SENDING = "SENDING"
    SENT = "SENT"
    FAILED = "FAILED"
    BOUNCED = "BOUNCED"
    # Was SENDING when its worker died: maybe delivered, never sent again (R16).
    UNKNOWN = "UNKNOWN"
    CANCELLED = "CANCELLED"
    SKIPPED = "SKIPPED"


class SkipReason(StrEnum):
    ARCHIVED = "ARCHIVED"
    INACTIVE = "INACTIVE"
    UNSUBSCRIBED = "UNSUBSCRIBED"
    NO_EMAIL = "NO_EMAIL"
    BOUNCED = "BOUNCED"
    DUPLICATE = "DUPLICATE"


class BatchState(StrEnum):
    QUEUED = "QUEUED"
    RUNNING = "RUNNING"
    DONE = "DONE"


class Campaign(Model):
    id = fields.BigIntField(primary_key=True)
    office = fields.ForeignKeyField(
        "models.Office", related_name="campaigns", on_delete=fields.CASCADE
    )
    account = fields.CharEnumField(SendAccount, max_length=8)
    # USER campaigns: the account holder, who sends them. Null for OFFICE campaigns.
    sender = fields.ForeignKeyField(
        "models.User", related_name="campaigns", null=True, on_delete=fields.SET_NULL
    )
    created_by = fields.ForeignKeyField(
        "models.User", related_name=False, null=True, on_delete=fields.SET_NULL
    )
    audience = fields.ForeignKeyField(
        "models.Audience", related_name="campaigns", on_delete=fields.RESTRICT
    )
    # Ids of audiences whose members are left out.
    excluded_audience_ids = fields.JSONField(default=list)
    sender_mode = fields.CharEnumField(SenderMode, max_length=16, default=SenderMode.ACCOUNT)
    name = fields.CharField(max_length=200)
    subject = fields.CharField(max_length=300)
    body_html = fields.TextField()
    state = fields.CharEnumField(CampaignState, max_length=10, default=CampaignState.DRAFT)
    scheduled_at = fields.DatetimeField(null=True)
    # Outbox: when the dispatch message was last handed to the broker (null: never).
    dispatch_enqueued_at = fields.DatetimeField(null=True)
    started_at = fields.DatetimeField(null=True)
    finished_at = fields.DatetimeField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "campaign"
        indexes = [
            Index(fields=("office_id", "id"), name="campaign_office"),
            Index(fields=("state", "scheduled_at"), name="campaign_due"),
        ]


class CampaignBatch(Model):
    """Deliveries `first_delivery_id`..`last_delivery_id` of one campaign, sent by one actor
    message. The row is the outbox entry: its state says what is done, whatever Redis holds."""

    id = fields.BigIntField(primary_key=True)
    campaign = fields.ForeignKeyField(
        "models.Campaign", related_name="batches", on_delete=fields.CASCADE
    )
    seq = fields.IntField()
    first_delivery_id = fields.BigIntField()
    last_delivery_id = fields.BigIntField()
    size = fields.IntField()
    state = fields.CharEnumField(BatchState, max_length=8, default=BatchState.QUEUED)
    attempts = fields.IntField(default=0)
    # A RUNNING batch belongs to its worker until then; a worker that died lets it lapse.
    lease_until = fields.DatetimeField(null=True)
    enqueued_at = fields.DatetimeField(null=True)
    finished_at = fields.DatetimeField(null=True)

    class Meta:
        table = "campaign_batch"
        unique_together = (("campaign", "seq"),)
        indexes = [Index(fields=("state", "enqueued_at"), name="campaign_batch_state")]


class Delivery(Model):
    """One row per contact a send considered. Written a hundred thousand at a time by the
    dispatcher's INSERT … SELECT, which takes every reference from the referenced tables in
    the same statement, so the database is not asked to check them again row by row (foreign
    key triggers were half of a large dispatch's time); campaigns, contacts and users are
    never deleted while their deliveries matter (contacts are archived, users deactivated)."""

    id = fields.BigIntField(primary_key=True)
    office = fields.ForeignKeyField(
        "models.Office", related_name=False, on_delete=fields.CASCADE, db_constraint=False
    )
    campaign = fields.ForeignKeyField(
        "models.Campaign", related_name="deliveries", on_delete=fields.CASCADE, db_constraint=False
    )
    contact = fields.ForeignKeyField(
        "models.Contact", related_name="deliveries", on_delete=fields.CASCADE, db_constraint=False
    )
    # The address it goes to, as resolved when sending started.
    email = fields.CharField(max_length=254, null=True)
    # Who it is from: a user, or null for the office (R17, senderMode).
    sender = fields.ForeignKeyField(
        "models.User", related_name=False, null=True, on_delete=fields.SET_NULL, db_constraint=False
    )
    state = fields.CharEnumField(DeliveryState, max_length=10)
    skip_reason = fields.CharEnumField(SkipReason, max_length=12, null=True)
    attempts = fields.IntField(default=0)
    error = fields.CharField(max_length=500, null=True)
    sent_at = fields.DatetimeField(null=True)
    # EMAIL_SENT activity written (in bulk, once per delivery).
    logged = fields.BooleanField(default=False)
    opened_at = fields.DatetimeField(null=True)
    clicked_at = fields.DatetimeField(null=True)
    unsubscribed_at = fields.DatetimeField(null=True)

    class Meta:
        table = "delivery"
        # Its index serves every per-campaign query. No index holds `state`, so the two marks
        # per message (SENDING, then the outcome) can be heap-only updates (see migration 0011).
        unique_together = (("campaign", "contact"),)


class Suppression(Model):
    """An address the mail server refused for good (5xx): later sends skip it."""

    id = fields.BigIntField(primary_key=True)
    office = fields.ForeignKeyField("models.Office", related_name=False, on_delete=fields.CASCADE)
    # Lower-cased address.
    address = fields.CharField(max_length=254)
    reason = fields.CharField(max_length=500, null=True)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "suppression"
        unique_together = (("office", "address"),)
