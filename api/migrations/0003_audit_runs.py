from tortoise import migrations
from tortoise.migrations import operations as ops
from api.audit.models import AuditTrigger, DiscrepancyKind
from api.core.jobs import JobState
from tortoise.fields.base import OnDelete
from tortoise import fields
from tortoise.indexes import Index

class Migration(migrations.Migration):
    dependencies = [('models', '0002_contact_search_trigram')]

    initial = False

    operations = [
        ops.CreateModel(
            name='AuditRun',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('office', fields.ForeignKeyField('models.Office', source_field='office_id', db_constraint=True, to_field='id', related_name='audit_runs', on_delete=OnDelete.CASCADE)),
                ('trigger', fields.CharEnumField(description='NIGHTLY: NIGHTLY\nMANUAL: MANUAL', enum_type=AuditTrigger, max_length=8)),
                ('night', fields.DateField(null=True)),
                ('dry_run', fields.BooleanField(default=False)),
                ('requested_by', fields.ForeignKeyField('models.User', source_field='requested_by_id', null=True, db_constraint=True, to_field='id', related_name=False, on_delete=OnDelete.SET_NULL)),
                ('state', fields.CharEnumField(default=JobState.QUEUED, description='QUEUED: QUEUED\nRUNNING: RUNNING\nDONE: DONE\nFAILED: FAILED', enum_type=JobState, max_length=8)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('enqueued_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('started_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('finished_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('at_risk', fields.IntField(default=0)),
                ('at_risk_flagged', fields.IntField(default=0)),
                ('at_risk_cleared', fields.IntField(default=0)),
                ('stale', fields.IntField(default=0)),
                ('no_status', fields.IntField(default=0)),
                ('auto_inactivated', fields.IntField(default=0)),
                ('discrepancies', fields.IntField(default=0)),
                ('active_count', fields.IntField(default=0)),
                ('inactive_count', fields.IntField(default=0)),
                ('error', fields.CharField(null=True, max_length=500)),
            ],
            options={'table': 'audit_run', 'app': 'models', 'unique_together': (('office', 'night'),), 'indexes': [Index(fields=['office_id', 'created_at'], name='audit_run_office_created')], 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Discrepancy',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('office', fields.ForeignKeyField('models.Office', source_field='office_id', db_constraint=True, to_field='id', related_name=False, on_delete=OnDelete.CASCADE)),
                ('run', fields.ForeignKeyField('models.AuditRun', source_field='run_id', db_constraint=True, to_field='id', related_name='found', on_delete=OnDelete.CASCADE)),
                ('contact', fields.ForeignKeyField('models.Contact', source_field='contact_id', db_constraint=True, to_field='id', related_name=False, on_delete=OnDelete.CASCADE)),
                ('kind', fields.CharEnumField(description='INACTIVE_BUT_ENGAGED: INACTIVE_BUT_ENGAGED\nOWNER_DEACTIVATED: OWNER_DEACTIVATED\nDUPLICATE_EMAIL: DUPLICATE_EMAIL\nINVALID_EMAIL: INVALID_EMAIL', enum_type=DiscrepancyKind, max_length=24)),
            ],
            options={'table': 'discrepancy', 'app': 'models', 'indexes': [Index(fields=['run_id', 'id'], name='discrepancy_run')], 'pk_attr': 'id'},
            bases=['Model'],
        ),
    ]
