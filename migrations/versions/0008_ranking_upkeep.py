"""The live ranking kept up to date by folding in changes (app/ranking/upkeep.py)

ranking_changes: one row per ranking-relevant write (the counter version it produced, the nomination
it touched or NULL). ranking_marks / ranking_sheets / ranking_reviewers / ranking_entries / ranking_z / ranking_means: derived rows,
created empty; the first poll of each ranking computes them whole (its mark is missing).

Revision ID: 0008
Revises: 0007
"""
import sqlalchemy as sa
from alembic import op

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None

LOCAL = ("mean", "trimmed", "median")  # ranking_entries' sort keys; the z-score's lives in ranking_z


def _scope():
    return [sa.Column('round_id', sa.Integer(), sa.ForeignKey('rounds.id', ondelete='CASCADE'), primary_key=True),
            sa.Column('category', sa.String(length=10), primary_key=True),
            sa.Column('drafts', sa.Boolean(), primary_key=True)]


def upgrade():
    op.create_table(
        'ranking_changes',
        sa.Column('id', sa.Integer(), primary_key=True),
        sa.Column('round_id', sa.Integer(), sa.ForeignKey('rounds.id', ondelete='CASCADE'), nullable=False),
        sa.Column('category', sa.String(length=10), nullable=False),
        sa.Column('version', sa.Integer(), nullable=False),
        sa.Column('nomination_id', sa.Integer(), nullable=True),
    )
    op.create_index('ix_ranking_changes_scope', 'ranking_changes', ['round_id', 'category', 'version'])
    op.create_table(
        'ranking_marks', *_scope(),
        sa.Column('version', sa.Integer(), nullable=False),
        sa.Column('rubric', sa.String(length=40), nullable=False),
        sa.Column('computations', sa.Integer(), nullable=False),
        sa.Column('folded_at', sa.Float(), nullable=False),
        sa.Column('claimed_at', sa.Float(), nullable=True),
    )
    op.create_table(
        'ranking_sheets', *_scope(),
        sa.Column('nomination_id', sa.Integer(), primary_key=True),
        sa.Column('sheet_id', sa.Integer(), primary_key=True),
        sa.Column('reviewer_id', sa.Integer(), nullable=False),
        sa.Column('total', sa.Float(), nullable=False),
        sqlite_with_rowid=False,
    )
    op.create_index('ix_ranking_sheets_reviewer', 'ranking_sheets',
                    ['round_id', 'category', 'drafts', 'reviewer_id', 'total', 'nomination_id'])
    op.create_table(
        'ranking_reviewers', *_scope(),
        sa.Column('reviewer_id', sa.Integer(), primary_key=True),
        sa.Column('n', sa.Integer(), nullable=False),
        sa.Column('mean', sa.Float(), nullable=False),
        sa.Column('var', sa.Float(), nullable=False),
    )
    op.create_table(
        'ranking_entries', *_scope(),
        sa.Column('nomination_id', sa.Integer(), primary_key=True),
        sa.Column('nominator_id', sa.Integer(), nullable=False),
        sa.Column('n_assigned', sa.Integer(), nullable=False),
        sa.Column('n_scored', sa.Integer(), nullable=False),
        *[sa.Column(name, sa.Float(), nullable=True)
          for name in ('mean', 'trimmed', 'median', 'stdev', 'spread', 'max_dev')],
        *[sa.Column(f'k_{m}', sa.Float(), nullable=False) for m in LOCAL],
        sa.Column('k_n', sa.Integer(), nullable=False),
        sa.Column('k_sd', sa.Float(), nullable=False),
        sqlite_with_rowid=False,
    )
    op.create_table(
        'ranking_means', *_scope(),
        sa.Column('nomination_id', sa.Integer(), primary_key=True),
        sa.Column('criterion_id', sa.Integer(), primary_key=True),
        sa.Column('mean', sa.Float(), nullable=False),
    )
    op.create_index('ix_ranking_entries_nominator', 'ranking_entries', ['round_id', 'category', 'drafts', 'nominator_id'])
    op.create_table(
        'ranking_z', *_scope(),
        sa.Column('nomination_id', sa.Integer(), primary_key=True),
        sa.Column('zscore', sa.Float(), nullable=True),
        sa.Column('k_zscore', sa.Float(), nullable=False),
        sa.Column('k_n', sa.Integer(), nullable=False),
        sa.Column('k_sd', sa.Float(), nullable=False),
        sqlite_with_rowid=False,
    )
    op.create_index('ix_ranking_z_k', 'ranking_z', ['round_id', 'category', 'drafts', 'k_zscore', 'k_n', 'k_sd',
                                                   'nomination_id'])
    for m in LOCAL:
        op.create_index(f'ix_ranking_entries_k_{m}', 'ranking_entries',
                        ['round_id', 'category', 'drafts', f'k_{m}', 'k_n', 'k_sd', 'nomination_id'])


def downgrade():
    for table in ('ranking_means', 'ranking_z', 'ranking_entries', 'ranking_reviewers', 'ranking_sheets', 'ranking_marks', 'ranking_changes'):
        op.drop_table(table)
