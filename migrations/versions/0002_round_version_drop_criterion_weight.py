"""round settings version; criterion weight removed

The criterion weight never took part in a total (totals are the plain sum of the criteria; the max
scores already carry the notice's 30/20/30/20 weighting), so it goes. Rounds get an optimistic-lock
version for the settings form.

Revision ID: 0002
Revises: 0001
"""
import sqlalchemy as sa
from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade():
    # Batch mode: SQLite can neither drop a column nor alter a CHECK in place, so the table is rebuilt.
    with op.batch_alter_table('criteria', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('ck_criteria_positive'), type_='check')
        batch_op.drop_column('weight')
        batch_op.create_check_constraint(batch_op.f('ck_criteria_positive'), 'max_score > 0 AND step > 0')
    with op.batch_alter_table('rounds', schema=None) as batch_op:
        batch_op.add_column(sa.Column('version', sa.Integer(), server_default='1', nullable=False))


def downgrade():
    with op.batch_alter_table('rounds', schema=None) as batch_op:
        batch_op.drop_column('version')
    with op.batch_alter_table('criteria', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('ck_criteria_positive'), type_='check')
        batch_op.add_column(sa.Column('weight', sa.Float(), server_default='1', nullable=False))
        batch_op.create_check_constraint(batch_op.f('ck_criteria_positive'),
                                         'max_score > 0 AND step > 0 AND weight > 0')
