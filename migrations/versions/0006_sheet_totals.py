"""Each score sheet keeps its total and how many criteria it has a value for

The live ranking aggregates sheets instead of pivoting every score: `review_sheets.total` is the sum
of the sheet's scores over its round × category's criteria and `n_values` how many of those criteria
have a value. Both are written in the same transaction as the scores (app/review/totals.py); existing
rows are back-filled from their scores here.

Revision ID: 0006
Revises: 0005
"""
import sqlalchemy as sa
from alembic import op

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None

# A sheet's criteria are those of its nomination's round and category; scores of any other criterion
# (none exist: the rubric cannot change once scored) would not count, exactly as in the ranking SQL.
_BACKFILL = """
UPDATE review_sheets SET
  total = COALESCE((SELECT SUM(sc.value) FROM scores sc
                    JOIN criteria c ON c.id = sc.criterion_id
                    JOIN nominations n ON n.id = review_sheets.nomination_id
                    WHERE sc.sheet_id = review_sheets.id AND c.round_id = n.round_id
                      AND c.category = n.category), 0),
  n_values = (SELECT COUNT(*) FROM scores sc
              JOIN criteria c ON c.id = sc.criterion_id
              JOIN nominations n ON n.id = review_sheets.nomination_id
              WHERE sc.sheet_id = review_sheets.id AND c.round_id = n.round_id
                AND c.category = n.category)
"""


def upgrade():
    # Plain ADD COLUMN on both engines (no table copy: see downgrade()).
    op.add_column('review_sheets', sa.Column('total', sa.Float(), server_default='0', nullable=False))
    op.add_column('review_sheets', sa.Column('n_values', sa.Integer(), server_default='0', nullable=False))
    op.execute(_BACKFILL)


def downgrade():
    # Not batch mode: on SQLite it would copy the table and drop the old one, and with foreign keys on
    # that DROP cascades to every score. ALTER TABLE … DROP COLUMN (SQLite >= 3.35) keeps the rows.
    op.drop_column('review_sheets', 'n_values')
    op.drop_column('review_sheets', 'total')
