"""initial results schema: training runs, checkpoints, evaluation runs, samples

Revision ID: 0001
Revises:
Create Date: 2026-11-20
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: Union[str, Sequence[str], None] = None
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "training_run",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_training_run"),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("backend", sa.String(32), nullable=False),
        sa.Column("preset", sa.String(255), nullable=True),
        sa.Column("config", sa.JSON(), nullable=True),
        sa.Column("output_dir", sa.Text(), nullable=True),
        sa.Column("started_at", TZ, nullable=False),
        sa.Column("finished_at", TZ, nullable=True),
        sa.UniqueConstraint("name", name="uq_training_run_name"),
    )
    op.create_table(
        "checkpoint",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_checkpoint"),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("source", sa.String(1024), nullable=False),
        sa.Column("training_run_id", sa.Integer(),
                  sa.ForeignKey("training_run.id", ondelete="SET NULL", name="fk_checkpoint_training_run_id_training_run"), nullable=True),
        sa.Column("stage", sa.String(32), nullable=False),
        sa.Column("step", sa.Integer(), nullable=True),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("meta", sa.JSON(), nullable=True),
        sa.UniqueConstraint("source", name="uq_checkpoint_source"),
    )
    op.create_index("ix_checkpoint_training_run_id", "checkpoint", ["training_run_id"])
    op.create_table(
        "eval_run",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_eval_run"),
        sa.Column("key", sa.String(64), nullable=False),
        sa.Column("checkpoint_id", sa.Integer(), sa.ForeignKey("checkpoint.id", ondelete="CASCADE", name="fk_eval_run_checkpoint_id_checkpoint"), nullable=False),
        sa.Column("task", sa.String(128), nullable=False),
        sa.Column("task_version", sa.String(64), nullable=False),
        sa.Column("k", sa.Integer(), nullable=False),
        sa.Column("temperature", sa.Float(), nullable=True),
        sa.Column("top_p", sa.Float(), nullable=True),
        sa.Column("max_new_tokens", sa.Integer(), nullable=True),
        sa.Column("prompt_template", sa.String(255), nullable=True),
        sa.Column("backend", sa.String(64), nullable=False),
        sa.Column("backend_version", sa.String(128), nullable=False),
        sa.Column("grader_version", sa.String(128), nullable=False),
        sa.Column("sampling", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("started_at", TZ, nullable=False),
        sa.Column("finished_at", TZ, nullable=True),
        sa.UniqueConstraint("key", name="uq_eval_run_key"),
    )
    op.create_index("ix_eval_run_checkpoint_id", "eval_run", ["checkpoint_id"])
    op.create_index("ix_eval_run_task", "eval_run", ["task"])
    op.create_table(
        "sample",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_sample"),
        sa.Column("eval_run_id", sa.Integer(), sa.ForeignKey("eval_run.id", ondelete="CASCADE", name="fk_sample_eval_run_id_eval_run"), nullable=False),
        sa.Column("problem_id", sa.String(255), nullable=False),
        sa.Column("sample_index", sa.Integer(), nullable=False),
        sa.Column("gold", sa.Text(), nullable=False),
        sa.Column("response", sa.Text(), nullable=False),
        sa.Column("extracted", sa.Text(), nullable=True),
        sa.Column("correct", sa.Boolean(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("n_tokens", sa.Integer(), nullable=False),
        sa.Column("finish_reason", sa.String(16), nullable=False),
        sa.Column("latency_s", sa.Float(), nullable=True),
        sa.Column("graded_with", sa.String(128), nullable=False),
        sa.UniqueConstraint("eval_run_id", "problem_id", "sample_index", name="uq_sample_run_problem_index"),
    )


def downgrade() -> None:
    op.drop_table("sample")
    op.drop_index("ix_eval_run_task", table_name="eval_run")
    op.drop_index("ix_eval_run_checkpoint_id", table_name="eval_run")
    op.drop_table("eval_run")
    op.drop_index("ix_checkpoint_training_run_id", table_name="checkpoint")
    op.drop_table("checkpoint")
    op.drop_table("training_run")
