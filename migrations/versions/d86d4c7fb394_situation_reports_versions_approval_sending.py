"""situation reports: versions, approval, sending

Revision ID: d86d4c7fb394
Revises: c804422fe396
Create Date: 2026-12-04 05:37:47.716106

"""
import json

from alembic import op
import sqlalchemy as sa

import app.types


# revision identifiers, used by Alembic.
revision = 'd86d4c7fb394'
down_revision = 'c804422fe396'
branch_labels = None
depends_on = None

NEW_COLUMNS = (
    ('period_start', app.types.UTCDateTime),
    ('period_end', app.types.UTCDateTime),
    ('drafted_at', app.types.UTCDateTime),
    ('previous_id', sa.Integer),
    ('superseded_by_id', sa.Integer),
    ('current_version', sa.Integer),
    ('approved_version', sa.Integer),
    ('approved_by_id', sa.Integer),
    ('approved_by_name', lambda: sa.String(length=100)),
    ('approved_at', app.types.UTCDateTime),
    ('sent_version', sa.Integer),
    ('sent_by_id', sa.Integer),
    ('sent_by_name', lambda: sa.String(length=100)),
    ('sent_at', app.types.UTCDateTime),
)
LIVE = sa.text("status != 'superseded'")


def upgrade():
    # Each one-line report issued so far becomes a sent report whose text is version 1.
    # The texts are read first: SQLite rebuilds situation_report below, which it cannot
    # do while version rows refer to it.
    connection = op.get_bind()
    old = connection.execute(sa.text("SELECT id, text FROM situation_report")).all()

    with op.batch_alter_table('situation_report', schema=None) as batch_op:
        for name, kind in NEW_COLUMNS:
            batch_op.add_column(sa.Column(name, kind(), nullable=True))
    op.execute(
        "UPDATE situation_report SET period_start = at, period_end = at, drafted_at = at, "
        "approved_at = at, sent_at = at, approved_version = 1, sent_version = 1, "
        "current_version = 1, approved_by_name = 'system', sent_by_name = 'system', "
        "status = 'sent'"
    )
    with op.batch_alter_table('situation_report', schema=None) as batch_op:
        for name in ('period_start', 'period_end', 'drafted_at'):
            batch_op.alter_column(name, existing_type=app.types.UTCDateTime(), nullable=False)
        batch_op.alter_column('current_version', existing_type=sa.Integer(), nullable=False)
        batch_op.create_index('uq_situation_report_live_number', ['incident_id', 'number'], unique=True, sqlite_where=LIVE, postgresql_where=LIVE)
        batch_op.create_foreign_key(batch_op.f('fk_situation_report_superseded_by_id_situation_report'), 'situation_report', ['superseded_by_id'], ['id'])
        batch_op.create_foreign_key(batch_op.f('fk_situation_report_previous_id_situation_report'), 'situation_report', ['previous_id'], ['id'])
        batch_op.create_foreign_key(batch_op.f('fk_situation_report_approved_by_id_user_account'), 'user_account', ['approved_by_id'], ['id'])
        batch_op.create_foreign_key(batch_op.f('fk_situation_report_sent_by_id_user_account'), 'user_account', ['sent_by_id'], ['id'])
        batch_op.drop_column('text')
        batch_op.drop_column('at')

    op.create_table('sitrep_version',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('report_id', sa.Integer(), nullable=False),
    sa.Column('number', sa.Integer(), nullable=False),
    sa.Column('sections', sa.JSON(), nullable=False),
    sa.Column('author_id', sa.Integer(), nullable=True),
    sa.Column('author_name', sa.String(length=100), nullable=False),
    sa.Column('note', sa.Text(), nullable=True),
    sa.Column('created_at', app.types.UTCDateTime(), nullable=True),
    sa.ForeignKeyConstraint(['author_id'], ['user_account.id'], name=op.f('fk_sitrep_version_author_id_user_account')),
    sa.ForeignKeyConstraint(['report_id'], ['situation_report.id'], name=op.f('fk_sitrep_version_report_id_situation_report')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_sitrep_version')),
    sa.UniqueConstraint('report_id', 'number', name=op.f('uq_sitrep_version_report_id_number'))
    )
    with op.batch_alter_table('sitrep_version', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_sitrep_version_report_id'), ['report_id'], unique=False)

    version = sa.table(
        'sitrep_version', sa.column('report_id', sa.Integer()), sa.column('number', sa.Integer()),
        sa.column('sections', sa.JSON()), sa.column('author_name', sa.String()),
        sa.column('note', sa.Text()),
    )
    if old:
        op.bulk_insert(version, [
            {'report_id': row.id, 'number': 1, 'sections': {'level': row.text},
             'author_name': 'system', 'note': 'the one-line report issued before versions'}
            for row in old
        ])
    # Copied in SQL, as the database holds the instants.
    op.execute(
        "UPDATE sitrep_version SET created_at = (SELECT drafted_at FROM situation_report "
        "WHERE situation_report.id = sitrep_version.report_id)"
    )
    with op.batch_alter_table('sitrep_version', schema=None) as batch_op:
        batch_op.alter_column('created_at', existing_type=app.types.UTCDateTime(), nullable=False)


def downgrade():
    # Back to one line per report: the text of the version it was sent at (or its latest).
    connection = op.get_bind()
    texts = {}
    for row in connection.execute(sa.text(
        "SELECT r.id, v.sections FROM situation_report r JOIN sitrep_version v "
        "ON v.report_id = r.id AND v.number = COALESCE(r.sent_version, r.current_version)"
    )):
        sections = row.sections if isinstance(row.sections, dict) else json.loads(row.sections)
        texts[row.id] = "\n".join(sections.values())

    with op.batch_alter_table('sitrep_version', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_sitrep_version_report_id'))
    op.drop_table('sitrep_version')

    with op.batch_alter_table('situation_report', schema=None) as batch_op:
        batch_op.add_column(sa.Column('at', app.types.UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column('text', sa.Text(), nullable=True))
    op.execute("UPDATE situation_report SET at = drafted_at, text = ''")
    op.execute("UPDATE situation_report SET status = 'issued' WHERE status = 'sent'")
    for report_id, text in texts.items():
        connection.execute(
            sa.text("UPDATE situation_report SET text = :text WHERE id = :id"),
            {"text": text, "id": report_id},
        )
    with op.batch_alter_table('situation_report', schema=None) as batch_op:
        batch_op.alter_column('at', existing_type=app.types.UTCDateTime(), nullable=False)
        batch_op.alter_column('text', existing_type=sa.Text(), nullable=False)
        batch_op.drop_constraint(batch_op.f('fk_situation_report_sent_by_id_user_account'), type_='foreignkey')
        batch_op.drop_constraint(batch_op.f('fk_situation_report_approved_by_id_user_account'), type_='foreignkey')
        batch_op.drop_constraint(batch_op.f('fk_situation_report_previous_id_situation_report'), type_='foreignkey')
        batch_op.drop_constraint(batch_op.f('fk_situation_report_superseded_by_id_situation_report'), type_='foreignkey')
        batch_op.drop_index('uq_situation_report_live_number', sqlite_where=LIVE, postgresql_where=LIVE)
        for name, _kind in reversed(NEW_COLUMNS):
            batch_op.drop_column(name)
