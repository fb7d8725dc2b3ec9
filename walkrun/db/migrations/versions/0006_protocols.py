"""eval_run.protocol, sample think/answer token split, problem_meta (level, subject, year per problem)

Revision ID: 0006
Revises: 0002
Create Date: 2026-11-30
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: Union[str, Sequence[str], None] = "0005"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    with op.batch_alter_table("eval_run") as batch:
        batch.add_column(sa.Column("protocol", sa.String(length=128), nullable=True))
        batch.create_index("ix_eval_run_protocol", ["protocol"])
    with op.batch_alter_table("sample") as batch:
        batch.add_column(sa.Column("think_tokens", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("answer_tokens", sa.Integer(), nullable=True))
    op.create_table(
        "problem_meta",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("task", sa.String(length=128), nullable=False),
        sa.Column("problem_id", sa.String(length=255), nullable=False),
        sa.Column("level", sa.String(length=32), nullable=True),
        sa.Column("subject", sa.String(length=128), nullable=True),
        sa.Column("year", sa.Integer(), nullable=True),
        sa.Column("meta", sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_problem_meta"),
        sa.UniqueConstraint("task", "problem_id", name="uq_problem_meta_task_problem"),
    )
    # Evaluations stored before protocols existed: the settings that equal a named protocol on
    # every task are recognisable without the task files (greedy: one response at temperature 0).
    op.execute("UPDATE eval_run SET protocol = 'greedy' WHERE k = 1 AND (temperature = 0 OR temperature IS NULL)")


def downgrade() -> None:
    op.drop_table("problem_meta")
    with op.batch_alter_table("sample") as batch:
        batch.drop_column("answer_tokens")
        batch.drop_column("think_tokens")
    with op.batch_alter_table("eval_run") as batch:
        batch.drop_index("ix_eval_run_protocol")
        batch.drop_column("protocol")
