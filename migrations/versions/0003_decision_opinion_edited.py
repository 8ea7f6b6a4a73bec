"""decisions remember whether the 审定意见 was written by hand

An opinion that was not edited follows its decision's template when the decision changes; one written
by hand is the chair's to keep or replace. Existing opinions that differ from both of their round's
templates (filled in for the nomination's category) were written by hand, and are marked so.

Revision ID: 0003
Revises: 0002
"""
import sqlalchemy as sa
from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None

# The templates filled in as app/deliberation/opinions.py:opinion_text does (replace works the same on
# SQLite and PostgreSQL); the category labels are the models' CATEGORY_LABELS at the time of writing.
_FILLED = ("replace(replace({tpl}, '{{year}}', CAST(r.year AS TEXT)), '{{category}}', "
           "CASE n.category WHEN 'unit' THEN '优秀组织单位' ELSE '优秀活动' END)")


def upgrade():
    with op.batch_alter_table('decisions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('opinion_edited', sa.Boolean(), server_default=sa.false(), nullable=False))
    op.execute(sa.text(
        "UPDATE decisions SET opinion_edited = " + ("true" if op.get_bind().dialect.name == "postgresql" else "1") +
        " WHERE length(trim(opinion)) > 0 AND EXISTS (SELECT 1 FROM nominations n JOIN rounds r ON r.id = n.round_id"
        " WHERE n.id = decisions.nomination_id"
        f" AND decisions.opinion <> {_FILLED.format(tpl='r.opinion_approve_template')}"
        f" AND decisions.opinion <> {_FILLED.format(tpl='r.opinion_decline_template')})"))


def downgrade():
    with op.batch_alter_table('decisions', schema=None) as batch_op:
        batch_op.drop_column('opinion_edited')
