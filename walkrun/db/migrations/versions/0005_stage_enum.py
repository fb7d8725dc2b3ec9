"""checkpoint.stage restricted to walkrun's stages by a CHECK constraint

A stage outside the list (written before it was enforced) becomes "train" for a checkpoint of a
training run and "external" otherwise.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30
"""
from typing import Sequence, Union

from alembic import op

revision: str = "0005"
down_revision: Union[str, Sequence[str], None] = "0004"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

# The list as of this revision (walkrun.stages.STAGES); a later change to the list gets its own revision.
STAGES = ("base", "sft", "stage1", "stage2", "control", "train", "external")
ALLOWED = "stage IN (" + ", ".join(f"'{s}'" for s in STAGES) + ")"


def upgrade() -> None:
    op.execute(f"UPDATE checkpoint SET stage = 'train' WHERE NOT ({ALLOWED}) AND training_run_id IS NOT NULL")
    op.execute(f"UPDATE checkpoint SET stage = 'external' WHERE NOT ({ALLOWED})")
    with op.batch_alter_table("checkpoint") as batch:
        batch.create_check_constraint("ck_checkpoint_stage", ALLOWED)


def downgrade() -> None:
    with op.batch_alter_table("checkpoint") as batch:
        batch.drop_constraint("ck_checkpoint_stage", type_="check")
