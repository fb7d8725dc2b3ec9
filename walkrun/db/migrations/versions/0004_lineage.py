"""training_run.parent_checkpoint_id and training_run.lineage: the checkpoint a run started from, and why

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: Union[str, Sequence[str], None] = "0003"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

FK = "fk_training_run_parent_checkpoint_id_checkpoint"
IX = "ix_training_run_parent_checkpoint_id"


def upgrade() -> None:
    with op.batch_alter_table("training_run") as batch:
        batch.add_column(sa.Column("parent_checkpoint_id", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("lineage", sa.JSON(), nullable=True))
        batch.create_foreign_key(FK, "checkpoint", ["parent_checkpoint_id"], ["id"], ondelete="SET NULL")
        batch.create_index(IX, ["parent_checkpoint_id"])


def downgrade() -> None:
    with op.batch_alter_table("training_run") as batch:
        batch.drop_index(IX)
        batch.drop_constraint(FK, type_="foreignkey")
        batch.drop_column("lineage")
        batch.drop_column("parent_checkpoint_id")
