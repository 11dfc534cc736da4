from tortoise import migrations
from tortoise.migrations import operations as ops
from api.audiences.models import AudienceKind, SendAccount
from api.campaigns.models import BatchState, CampaignState, DeliveryState, SenderMode, SkipReason
from orjson import loads
from tortoise.fields.base import OnDelete
from tortoise.fields.data import JSON_DUMPS
from tortoise import fields
from tortoise.indexes import Index

class Migration(migrations.Migration):
    dependencies = [('models', '0005_audit_indexes')]

    initial = False

    operations = [
        ops.CreateModel(
            name='Audience',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('office', fields.ForeignKeyField('models.Office', source_field='office_id', db_constraint=True, to_field='id', related_name='audiences', on_delete=OnDelete.CASCADE)),
                ('account', fields.CharEnumField(description='USER: USER\nOFFICE: OFFICE', enum_type=SendAccount, max_length=8)),
                ('owner', fields.ForeignKeyField('models.User', source_field='owner_id', null=True, db_constraint=True, to_field='id', related_name='audiences', on_delete=OnDelete.CASCADE)),
                ('account_key', fields.CharField(max_length=32)),
                ('kind', fields.CharEnumField(description='SYSTEM: SYSTEM\nCUSTOM: CUSTOM', enum_type=AudienceKind, max_length=8)),
                ('system_key', fields.CharField(null=True, max_length=20)),
                ('name', fields.CharField(max_length=200)),
                ('conditions', fields.JSONField(default=dict, encoder=JSON_DUMPS, decoder=loads)),
                ('created_by', fields.ForeignKeyField('models.User', source_field='created_by_id', null=True, db_constraint=True, to_field='id', related_name=False, on_delete=OnDelete.SET_NULL)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('updated_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
                ('deleted_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'audience', 'app': 'models', 'unique_together': (('office', 'account_key', 'system_key'),), 'indexes': [Index(fields=['office_id', 'account_key', 'id'], name='audience_account')], 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Campaign',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('office', fields.ForeignKeyField('models.Office', source_field='office_id', db_constraint=True, to_field='id', related_name='campaigns', on_delete=OnDelete.CASCADE)),
                ('account', fields.CharEnumField(description='USER: USER\nOFFICE: OFFICE', enum_type=SendAccount, max_length=8)),
                ('sender', fields.ForeignKeyField('models.User', source_field='sender_id', null=True, db_constraint=True, to_field='id', related_name='campaigns', on_delete=OnDelete.SET_NULL)),
                ('created_by', fields.ForeignKeyField('models.User', source_field='created_by_id', null=True, db_constraint=True, to_field='id', related_name=False, on_delete=OnDelete.SET_NULL)),
                ('audience', fields.ForeignKeyField('models.Audience', source_field='audience_id', db_constraint=True, to_field='id', related_name='campaigns', on_delete=OnDelete.RESTRICT)),
                ('excluded_audience_ids', fields.JSONField(default=list, encoder=JSON_DUMPS, decoder=loads)),
                ('sender_mode', fields.CharEnumField(default=SenderMode.ACCOUNT, description='ACCOUNT: ACCOUNT\nOWNER_OR_OFFICE: OWNER_OR_OFFICE', enum_type=SenderMode, max_length=16)),
                ('name', fields.CharField(max_length=200)),
                ('subject', fields.CharField(max_length=300)),
                ('body_html', fields.TextField(unique=False)),
                ('state', fields.CharEnumField(default=CampaignState.DRAFT, description='DRAFT: DRAFT\nSCHEDULED: SCHEDULED\nSENDING: SENDING\nSENT: SENT\nCANCELLED: CANCELLED\nFAILED: FAILED', enum_type=CampaignState, max_length=10)),
                ('scheduled_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('dispatch_enqueued_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('started_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('finished_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('updated_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
            ],
            options={'table': 'campaign', 'app': 'models', 'indexes': [Index(fields=['office_id', 'id'], name='campaign_office'), Index(fields=['state', 'scheduled_at'], name='campaign_due')], 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='CampaignBatch',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('campaign', fields.ForeignKeyField('models.Campaign', source_field='campaign_id', db_constraint=True, to_field='id', related_name='batches', on_delete=OnDelete.CASCADE)),
                ('seq', fields.IntField()),
                ('first_delivery_id', fields.BigIntField()),
                ('last_delivery_id', fields.BigIntField()),
                ('size', fields.IntField()),
                ('state', fields.CharEnumField(default=BatchState.QUEUED, description='QUEUED: QUEUED\nRUNNING: RUNNING\nDONE: DONE', enum_type=BatchState, max_length=8)),
                ('attempts', fields.IntField(default=0)),
                ('lease_until', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('enqueued_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('finished_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'campaign_batch', 'app': 'models', 'unique_together': (('campaign', 'seq'),), 'indexes': [Index(fields=['state', 'enqueued_at'], name='campaign_batch_state')], 'pk_attr': 'id', 'table_description': 'Deliveries `first_delivery_id`..`last_delivery_id` of one campaign, sent by one actor'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Delivery',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('office', fields.ForeignKeyField('models.Office', source_field='office_id', db_constraint=True, to_field='id', related_name=False, on_delete=OnDelete.CASCADE)),
                ('campaign', fields.ForeignKeyField('models.Campaign', source_field='campaign_id', db_constraint=True, to_field='id', related_name='deliveries', on_delete=OnDelete.CASCADE)),
                ('contact', fields.ForeignKeyField('models.Contact', source_field='contact_id', db_constraint=True, to_field='id', related_name='deliveries', on_delete=OnDelete.CASCADE)),
                ('email', fields.CharField(null=True, max_length=254)),
                ('sender', fields.ForeignKeyField('models.User', source_field='sender_id', null=True, db_constraint=True, to_field='id', related_name=False, on_delete=OnDelete.SET_NULL)),
                ('state', fields.CharEnumField(description='PENDING: PENDING\nSENDING: SENDING\nSENT: SENT\nFAILED: FAILED\nBOUNCED: BOUNCED\nUNKNOWN: UNKNOWN\nCANCELLED: CANCELLED\nSKIPPED: SKIPPED', enum_type=DeliveryState, max_length=10)),
                ('skip_reason', fields.CharEnumField(null=True, description='ARCHIVED: ARCHIVED\nINACTIVE: INACTIVE\nUNSUBSCRIBED: UNSUBSCRIBED\nNO_EMAIL: NO_EMAIL\nBOUNCED: BOUNCED\nDUPLICATE: DUPLICATE', enum_type=SkipReason, max_length=12)),
                ('attempts', fields.IntField(default=0)),
                ('error', fields.CharField(null=True, max_length=500)),
                ('sent_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('logged', fields.BooleanField(default=False)),
                ('opened_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('clicked_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('unsubscribed_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'delivery', 'app': 'models', 'unique_together': (('campaign', 'contact'),), 'indexes': [Index(fields=['campaign_id', 'state'], name='delivery_campaign_state')], 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Suppression',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('office', fields.ForeignKeyField('models.Office', source_field='office_id', db_constraint=True, to_field='id', related_name=False, on_delete=OnDelete.CASCADE)),
                ('address', fields.CharField(max_length=254)),
                ('reason', fields.CharField(null=True, max_length=500)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'suppression', 'app': 'models', 'unique_together': (('office', 'address'),), 'pk_attr': 'id', 'table_description': 'An address the mail server refused for good (5xx): later sends skip it.'},
            bases=['Model'],
        ),
        ops.AddField(
            model_name='Office',
            name='sender_email',
            field=fields.CharField(null=True, max_length=254),
        ),
    ]
