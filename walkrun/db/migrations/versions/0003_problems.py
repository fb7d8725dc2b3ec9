"""problem table (gold answer + accepted alternatives per task problem) and eval_run.think_opened,
so re-grading uses the same answers and think-block rule as the evaluation

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: Union[str, Sequence[str], None] = "0002"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table(
        "problem",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_problem"),
        sa.Column("task", sa.String(128), nullable=False),
        sa.Column("problem_id", sa.String(255), nullable=False),
        sa.Column("answer", sa.Text(), nullable=False),
        sa.Column("answer_alts", sa.JSON(), nullable=True),
        sa.UniqueConstraint("task", "problem_id", name="uq_problem_task_problem_id"),
    )
    with op.batch_alter_table("eval_run") as batch:
        batch.add_column(sa.Column("think_opened", sa.Boolean(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("eval_run") as batch:
        batch.drop_column("think_opened")
    op.drop_table("problem")
