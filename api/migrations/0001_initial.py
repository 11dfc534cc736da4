from tortoise import migrations
from tortoise.migrations import operations as ops
from api.contacts.models import ActivityKind, ContactStatus, OwnerSource, StatusSource
from api.users.models import Role
from tortoise.fields.base import OnDelete
from tortoise import fields
from tortoise.indexes import Index

class Migration(migrations.Migration):
    initial = True

    operations = [
        ops.CreateModel(
            name='Office',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('name', fields.CharField(unique=True, max_length=200)),
                ('timezone', fields.CharField(default='UTC', max_length=64)),
                ('risk_days', fields.IntField(default=90)),
                ('stale_days', fields.IntField(default=180)),
                ('auto_inactivate_days', fields.IntField(null=True)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'office', 'app': 'models', 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Company',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('office', fields.ForeignKeyField('models.Office', source_field='office_id', db_constraint=True, to_field='id', related_name='companies', on_delete=OnDelete.CASCADE)),
                ('name', fields.CharField(max_length=200)),
                ('name_key', fields.CharField(max_length=200)),
            ],
            options={'table': 'company', 'app': 'models', 'unique_together': (('office', 'name_key'),), 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='User',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('office', fields.ForeignKeyField('models.Office', source_field='office_id', db_constraint=True, to_field='id', related_name='users', on_delete=OnDelete.CASCADE)),
                ('email', fields.CharField(unique=True, max_length=254)),
                ('name', fields.CharField(max_length=200)),
                ('password_hash', fields.CharField(max_length=255)),
                ('role', fields.CharEnumField(default=Role.AGENT, description='ADMIN: ADMIN\nAGENT: AGENT', enum_type=Role, max_length=16)),
                ('crm_agent_id', fields.CharField(null=True, max_length=100)),
                ('office_wide_access', fields.BooleanField(default=False)),
                ('can_export', fields.BooleanField(default=False)),
                ('can_delete', fields.BooleanField(default=False)),
                ('active', fields.BooleanField(default=True)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'app_user', 'app': 'models', 'unique_together': (('office', 'crm_agent_id'),), 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Contact',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('office', fields.ForeignKeyField('models.Office', source_field='office_id', db_constraint=True, to_field='id', related_name='contacts', on_delete=OnDelete.CASCADE)),
                ('external_id', fields.CharField(null=True, max_length=100)),
                ('first_name', fields.CharField(max_length=200)),
                ('last_name', fields.CharField(max_length=200)),
                ('email', fields.CharField(null=True, max_length=254)),
                ('phone', fields.CharField(null=True, max_length=40)),
                ('company', fields.ForeignKeyField('models.Company', source_field='company_id', null=True, db_constraint=True, to_field='id', related_name='contacts', on_delete=OnDelete.SET_NULL)),
                ('crm_owner_id', fields.CharField(null=True, max_length=100)),
                ('owner', fields.ForeignKeyField('models.User', source_field='owner_id', null=True, db_constraint=True, to_field='id', related_name='contacts', on_delete=OnDelete.SET_NULL)),
                ('owner_source', fields.CharEnumField(null=True, description='CRM: CRM\nMANUAL: MANUAL', enum_type=OwnerSource, max_length=8)),
                ('status', fields.CharEnumField(null=True, description='ACTIVE: ACTIVE\nINACTIVE: INACTIVE', enum_type=ContactStatus, max_length=8)),
                ('status_source', fields.CharEnumField(null=True, description='USER: USER\nIMPORT: IMPORT\nENGAGEMENT: ENGAGEMENT\nAUDIT: AUDIT', enum_type=StatusSource, max_length=16)),
                ('status_updated_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('last_activity_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('at_risk_since', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('unsubscribed', fields.BooleanField(default=False)),
                ('archived', fields.BooleanField(default=False)),
                ('archived_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('updated_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
                ('search_text', fields.TextField(default='', unique=False)),
            ],
            options={'table': 'contact', 'app': 'models', 'unique_together': (('office', 'external_id'),), 'indexes': [Index(fields=['office_id', 'archived', 'owner_id', 'id'], name='contact_office_owner'), Index(fields=['office_id', 'archived', 'status', 'id'], name='contact_office_status'), Index(fields=['office_id', 'company_id'], name='contact_office_company'), Index(fields=['office_id', 'crm_owner_id'], name='contact_office_crm_owner'), Index(fields=['office_id', 'at_risk_since'], name='contact_office_at_risk'), Index(fields=['office_id', 'last_activity_at'], name='contact_office_last_activity'), Index(fields=['office_id', 'status_updated_at'], name='contact_office_status_updated'), Index(fields=['office_id', 'email'], name='contact_office_email')], 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Activity',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('office', fields.ForeignKeyField('models.Office', source_field='office_id', db_constraint=True, to_field='id', related_name='activities', on_delete=OnDelete.CASCADE)),
                ('contact', fields.ForeignKeyField('models.Contact', source_field='contact_id', db_constraint=True, to_field='id', related_name='activities', on_delete=OnDelete.CASCADE)),
                ('kind', fields.CharEnumField(description='EMAIL_SENT: EMAIL_SENT\nEMAIL_OPENED: EMAIL_OPENED\nEMAIL_CLICKED: EMAIL_CLICKED\nEMAIL_REPLIED: EMAIL_REPLIED\nCALL: CALL\nTASK: TASK\nMEETING: MEETING\nWEBINAR_ATTENDED: WEBINAR_ATTENDED\nDEAL: DEAL', enum_type=ActivityKind, max_length=20)),
                ('at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('note', fields.TextField(null=True, unique=False)),
                ('user', fields.ForeignKeyField('models.User', source_field='user_id', null=True, db_constraint=True, to_field='id', related_name=False, on_delete=OnDelete.SET_NULL)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'activity', 'app': 'models', 'indexes': [Index(fields=['contact_id', 'at', 'id'], name='activity_contact_at')], 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='StatusChange',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('office', fields.ForeignKeyField('models.Office', source_field='office_id', db_constraint=True, to_field='id', related_name='status_changes', on_delete=OnDelete.CASCADE)),
                ('contact', fields.ForeignKeyField('models.Contact', source_field='contact_id', db_constraint=True, to_field='id', related_name='status_changes', on_delete=OnDelete.CASCADE)),
                ('from_status', fields.CharEnumField(null=True, description='ACTIVE: ACTIVE\nINACTIVE: INACTIVE', enum_type=ContactStatus, max_length=8)),
                ('to_status', fields.CharEnumField(null=True, description='ACTIVE: ACTIVE\nINACTIVE: INACTIVE', enum_type=ContactStatus, max_length=8)),
                ('source', fields.CharEnumField(description='USER: USER\nIMPORT: IMPORT\nENGAGEMENT: ENGAGEMENT\nAUDIT: AUDIT', enum_type=StatusSource, max_length=16)),
                ('actor', fields.ForeignKeyField('models.User', source_field='actor_id', null=True, db_constraint=True, to_field='id', related_name=False, on_delete=OnDelete.SET_NULL)),
                ('reason', fields.CharField(null=True, max_length=500)),
                ('at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'status_change', 'app': 'models', 'indexes': [Index(fields=['contact_id', 'at'], name='status_change_contact_at')], 'pk_attr': 'id', 'table_description': "One change of a contact's status. Rows are only ever inserted (R8)."},
            bases=['Model'],
        ),
    ]
