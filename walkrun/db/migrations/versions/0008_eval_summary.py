"""eval_summary: each evaluation run's aggregates, stored when it finishes (backfilled here)

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: Union[str, Sequence[str], None] = "0007"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table(
        "eval_summary",
        sa.Column("eval_run_id", sa.Integer(), nullable=False),
        sa.Column("version", sa.String(32), nullable=False),
        sa.Column("n_samples", sa.Integer(), nullable=False),
        sa.Column("stats", sa.JSON(), nullable=False),
        sa.Column("budget_curve", sa.JSON(), nullable=True),
        sa.Column("computed_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["eval_run_id"], ["eval_run.id"], name="fk_eval_summary_eval_run_id_eval_run", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("eval_run_id", name="pk_eval_summary"),
    )
    op.create_index("ix_eval_summary_computed_at", "eval_summary", ["computed_at"])
    # Finished evaluations of an existing DB get their summary now. With the code of a later
    # walkrun (whose models may need columns a later revision adds) this can fail: then the rows
    # are computed on read and stored by the next `walkrun leaderboard serve|build`.
    from walkrun.db import summaries

    conn = op.get_bind()
    try:
        with conn.begin_nested():
            summaries.backfill_connection(conn)
    except Exception as e:  # noqa: BLE001 - a cache; the upgrade itself must not fail for it
        print(f"walkrun: evaluation summaries not backfilled ({type(e).__name__}); they are computed on read")


def downgrade() -> None:
    op.drop_index("ix_eval_summary_computed_at", table_name="eval_summary")
    op.drop_table("eval_summary")
