"""sample.has_boxed (answer boxed but maybe not extracted) and an index for re-grading by grader version

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-20
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: Union[str, Sequence[str], None] = "0001"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    with op.batch_alter_table("sample") as batch:
        batch.add_column(sa.Column("has_boxed", sa.Boolean(), nullable=True))
        batch.create_index("ix_sample_graded_with", ["graded_with"])


def downgrade() -> None:
    with op.batch_alter_table("sample") as batch:
        batch.drop_index("ix_sample_graded_with")
        batch.drop_column("has_boxed")
