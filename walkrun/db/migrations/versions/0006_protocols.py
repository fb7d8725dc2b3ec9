"""eval_run.protocol, sample think/answer token split, problem level / subject / year

Revision ID: 0006
Revises: 0005
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
    with op.batch_alter_table("problem") as batch:  # facts for grouping results, once per problem
        batch.add_column(sa.Column("level", sa.String(length=32), nullable=True))
        batch.add_column(sa.Column("subject", sa.String(length=128), nullable=True))
        batch.add_column(sa.Column("year", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("meta", sa.JSON(), nullable=True))
    # Evaluations stored before protocols existed: the settings that equal a named protocol on
    # every task are recognisable without the task files (greedy: one response at temperature 0).
    op.execute("UPDATE eval_run SET protocol = 'greedy' WHERE k = 1 AND (temperature = 0 OR temperature IS NULL)")


def downgrade() -> None:
    with op.batch_alter_table("problem") as batch:
        for column in ("meta", "year", "subject", "level"):
            batch.drop_column(column)
    with op.batch_alter_table("sample") as batch:
        batch.drop_column("answer_tokens")
        batch.drop_column("think_tokens")
    with op.batch_alter_table("eval_run") as batch:
        batch.drop_index("ix_eval_run_protocol")
        batch.drop_column("protocol")
