"""training_metric: each training run's per-step training metrics (reward, lengths, entropy, ...)

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-04
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

# The stage list as of this revision (walkrun.stages.STAGES); a later change gets its own revision.
STAGES = ("base", "sft", "stage1", "stage2", "control", "train", "external")

revision: str = "0010"
down_revision: Union[str, Sequence[str], None] = "0009"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table(
        "training_metric",
        sa.Column("training_run_id", sa.Integer(), nullable=False),
        sa.Column("stage", sa.String(32), nullable=False),
        sa.Column("step", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        sa.CheckConstraint(
            "stage IN (" + ", ".join(f"'{s}'" for s in STAGES) + ")", name="ck_training_metric_stage"
        ),
        sa.ForeignKeyConstraint(
            ["training_run_id"],
            ["training_run.id"],
            name="fk_training_metric_training_run_id_training_run",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("training_run_id", "stage", "step", "name", name="pk_training_metric"),
    )


def downgrade() -> None:
    op.drop_table("training_metric")
