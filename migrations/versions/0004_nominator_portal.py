"""推荐单位 portal: nomination workflow, invitations, deadline extensions, the mail outbox

Nominations gain the portal's states (草稿 / 已提交 / 退回修改 beside 已受理 = active and 已撤回), where
they came from, and the admin's return note; attachments may be the stamped 推荐表 scan; users get the
one-time password / invitation fields and a contact address; per-unit deadline extensions and the
outbox of every e-mail written are new tables. Existing rows keep their meaning: every existing
nomination came through the admin and stays active.

Revision ID: 0004
Revises: 0003
"""
import sqlalchemy as sa
from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('nominations', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('ck_nominations_status'), type_='check')
        batch_op.create_check_constraint(batch_op.f('ck_nominations_status'),
                                         "status IN ('draft','submitted','returned','active','withdrawn')")
        batch_op.add_column(sa.Column('origin', sa.String(length=10), server_default='admin', nullable=False))
        batch_op.add_column(sa.Column('submitted_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('accepted_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('return_note', sa.Text(), server_default='', nullable=False))
        batch_op.create_check_constraint(batch_op.f('ck_nominations_origin'), "origin IN ('admin','portal')")
    with op.batch_alter_table('attachments', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('ck_attachments_kind'), type_='check')
        batch_op.create_check_constraint(batch_op.f('ck_attachments_kind'), "kind IN ('photo','video','stamped')")
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.add_column(sa.Column('must_change_password', sa.Boolean(), server_default=sa.false(), nullable=False))
        batch_op.add_column(sa.Column('invite_token_hash', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('invite_expires_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('email', sa.String(length=200), server_default='', nullable=False))
        batch_op.add_column(sa.Column('phone', sa.String(length=50), server_default='', nullable=False))
        batch_op.create_unique_constraint(batch_op.f('uq_users_invite_token_hash'), ['invite_token_hash'])
    op.create_table('deadline_extensions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('round_id', sa.Integer(), nullable=False),
    sa.Column('nominator_id', sa.Integer(), nullable=False),
    sa.Column('until', sa.Date(), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('granted_by_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['granted_by_id'], ['users.id'], name=op.f('fk_deadline_extensions_granted_by_id_users'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['nominator_id'], ['nominators.id'], name=op.f('fk_deadline_extensions_nominator_id_nominators'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['round_id'], ['rounds.id'], name=op.f('fk_deadline_extensions_round_id_rounds'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_deadline_extensions')),
    sa.UniqueConstraint('round_id', 'nominator_id', name=op.f('uq_deadline_extensions_round_id_nominator_id'))
    )
    with op.batch_alter_table('deadline_extensions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_deadline_extensions_round_id'), ['round_id'], unique=False)
    op.create_table('mail_outbox',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('round_id', sa.Integer(), nullable=True),
    sa.Column('to_addr', sa.String(length=200), nullable=False),
    sa.Column('subject', sa.String(length=200), nullable=False),
    sa.Column('body', sa.Text(), nullable=False),
    sa.Column('status', sa.String(length=10), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('error', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('sent_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("status IN ('pending','sent','failed','outbox')", name=op.f('ck_mail_outbox_status')),
    sa.ForeignKeyConstraint(['round_id'], ['rounds.id'], name=op.f('fk_mail_outbox_round_id_rounds'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_mail_outbox'))
    )
    with op.batch_alter_table('mail_outbox', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_mail_outbox_created_at'), ['created_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_mail_outbox_round_id'), ['round_id'], unique=False)


def downgrade():
    op.drop_table('mail_outbox')
    op.drop_table('deadline_extensions')
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('uq_users_invite_token_hash'), type_='unique')
        for col in ('phone', 'email', 'invite_expires_at', 'invite_token_hash', 'must_change_password'):
            batch_op.drop_column(col)
    op.execute(sa.text("DELETE FROM attachments WHERE kind = 'stamped'"))
    with op.batch_alter_table('attachments', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('ck_attachments_kind'), type_='check')
        batch_op.create_check_constraint(batch_op.f('ck_attachments_kind'), "kind IN ('photo','video')")
    op.execute(sa.text("DELETE FROM nominations WHERE status IN ('draft','submitted','returned')"))
    with op.batch_alter_table('nominations', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('ck_nominations_origin'), type_='check')
        for col in ('return_note', 'accepted_at', 'submitted_at', 'origin'):
            batch_op.drop_column(col)
        batch_op.drop_constraint(batch_op.f('ck_nominations_status'), type_='check')
        batch_op.create_check_constraint(batch_op.f('ck_nominations_status'), "status IN ('active','withdrawn')")
