"""Mail outbox: the 发送中 (sending) claim

A delivery first moves its row pending → sending in one conditional UPDATE and only the winner talks
SMTP, so the job and `flask mail sweep` / 重新发送 can no longer send one message twice. `claimed_at`
is when the row entered sending: the sweep re-queues a row stuck there longer than
MAIL_SENDING_STALE_MINUTES (its consumer died mid-send).

Revision ID: 0007
Revises: 0006
"""
import sqlalchemy as sa
from alembic import op

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None

_WITH_SENDING = "status IN ('pending','sending','sent','failed','outbox')"
_WITHOUT_SENDING = "status IN ('pending','sent','failed','outbox')"


def upgrade():
    # Batch mode copies the table on SQLite (a CHECK cannot be altered in place); nothing references
    # mail_outbox, so the copy's DROP cascades to no other row.
    with op.batch_alter_table('mail_outbox', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('ck_mail_outbox_status'), type_='check')
        batch_op.create_check_constraint(batch_op.f('ck_mail_outbox_status'), _WITH_SENDING)
        batch_op.add_column(sa.Column('claimed_at', sa.DateTime(timezone=True), nullable=True))


def downgrade():
    # A message caught mid-send may or may not have left; 待发送 lets the sweep deliver it (at worst twice,
    # as before this revision) rather than lose it.
    op.execute("UPDATE mail_outbox SET status = 'pending' WHERE status = 'sending'")
    with op.batch_alter_table('mail_outbox', schema=None) as batch_op:
        batch_op.drop_column('claimed_at')
        batch_op.drop_constraint(batch_op.f('ck_mail_outbox_status'), type_='check')
        batch_op.create_check_constraint(batch_op.f('ck_mail_outbox_status'), _WITHOUT_SENDING)
