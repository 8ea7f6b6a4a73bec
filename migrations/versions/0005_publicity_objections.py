"""公示 dates, objections (异议) and the 表扬通报 settings

A round gains its 公示 start day, its length in 工作日 (default 5) and a hand-entered end day for a year
the holiday calendar does not cover; objections filed on the public page are kept with how the office
handled them; the 通报's 文号, 主送 and body template live in their own table, one row per round.

Revision ID: 0005
Revises: 0004
"""
import sqlalchemy as sa
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('rounds', schema=None) as batch_op:
        batch_op.add_column(sa.Column('publicity_start', sa.Date(), nullable=True))
        batch_op.add_column(sa.Column('publicity_days', sa.Integer(), server_default='5', nullable=False))
        batch_op.add_column(sa.Column('publicity_end', sa.Date(), nullable=True))
    op.create_table('objections',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('round_id', sa.Integer(), nullable=False),
    sa.Column('nomination_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=50), nullable=False),
    sa.Column('unit', sa.String(length=100), nullable=False),
    sa.Column('phone', sa.String(length=30), nullable=False),
    sa.Column('email', sa.String(length=200), nullable=False),
    sa.Column('facts', sa.Text(), nullable=False),
    sa.Column('attachment_name', sa.String(length=100), nullable=True),
    sa.Column('attachment_mime', sa.String(length=50), nullable=True),
    sa.Column('attachment_size', sa.Integer(), nullable=True),
    sa.Column('status', sa.String(length=10), nullable=False),
    sa.Column('reject_reason', sa.Text(), nullable=False),
    sa.Column('verification', sa.Text(), nullable=False),
    sa.Column('result', sa.String(length=10), nullable=True),
    sa.Column('result_note', sa.Text(), nullable=False),
    sa.Column('handled_by_id', sa.Integer(), nullable=True),
    sa.Column('handled_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('address_hash', sa.String(length=64), nullable=False),
    sa.Column('version', sa.Integer(), server_default='1', nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("result IS NULL OR result IN ('upheld','revoked')", name=op.f('ck_objections_result')),
    sa.CheckConstraint("status IN ('received','accepted','rejected','closed')", name=op.f('ck_objections_status')),
    sa.ForeignKeyConstraint(['handled_by_id'], ['users.id'], name=op.f('fk_objections_handled_by_id_users'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['nomination_id'], ['nominations.id'], name=op.f('fk_objections_nomination_id_nominations'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['round_id'], ['rounds.id'], name=op.f('fk_objections_round_id_rounds'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_objections'))
    )
    with op.batch_alter_table('objections', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_objections_nomination_id'), ['nomination_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_objections_round_id'), ['round_id'], unique=False)
    op.create_table('notice_settings',
    sa.Column('round_id', sa.Integer(), nullable=False),
    sa.Column('number', sa.String(length=100), nullable=False),
    sa.Column('recipients', sa.String(length=500), nullable=False),
    sa.Column('body_template', sa.Text(), nullable=False),
    sa.Column('version', sa.Integer(), server_default='1', nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['round_id'], ['rounds.id'], name=op.f('fk_notice_settings_round_id_rounds'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('round_id', name=op.f('pk_notice_settings'))
    )


def downgrade():
    op.drop_table('notice_settings')
    with op.batch_alter_table('objections', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_objections_round_id'))
        batch_op.drop_index(batch_op.f('ix_objections_nomination_id'))
    op.drop_table('objections')
    with op.batch_alter_table('rounds', schema=None) as batch_op:
        batch_op.drop_column('publicity_end')
        batch_op.drop_column('publicity_days')
        batch_op.drop_column('publicity_start')
