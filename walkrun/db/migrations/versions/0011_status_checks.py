"""eval_run.status, sample.status and sample.finish_reason restricted to walkrun's statuses by CHECK constraints

Rows written before the constraints with a value outside the lists (only a hand-edited DB has
them: walkrun always wrote these) are mapped first: an unknown run status becomes "failed", an
unknown grading status "error" (a grading failure, never a verdict), an unknown finish reason
"length" with the sample counted wrong (a cut answer is never a right one); the stored summaries
of the runs whose samples change are dropped (recomputed on read).

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-04
"""
from typing import Sequence, Union

from alembic import op

revision: str = "0011"
down_revision: Union[str, Sequence[str], None] = "0010"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

# The lists as of this revision (walkrun.statuses); a later change to a list gets its own revision.
RUN_STATUSES = ("running", "done", "failed")
GRADE_STATUSES = ("ok", "no_answer", "parse_error", "timeout", "error")
FINISH_REASONS = ("stop", "length")


def _allowed(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN (" + ", ".join(f"'{v}'" for v in values) + ")"


RUN_OK = _allowed("status", RUN_STATUSES)
GRADE_OK = _allowed("status", GRADE_STATUSES)
FINISH_OK = _allowed("finish_reason", FINISH_REASONS)


def upgrade() -> None:
    op.execute(f"UPDATE eval_run SET status = 'failed' WHERE NOT ({RUN_OK})")
    op.execute(
        f"DELETE FROM eval_summary WHERE eval_run_id IN "
        f"(SELECT eval_run_id FROM sample WHERE NOT ({GRADE_OK}) OR NOT ({FINISH_OK}))"
    )
    op.execute(f"UPDATE sample SET status = 'error' WHERE NOT ({GRADE_OK})")
    op.execute(f"UPDATE sample SET finish_reason = 'length', correct = false WHERE NOT ({FINISH_OK})")
    with op.batch_alter_table("eval_run") as batch:
        batch.create_check_constraint("ck_eval_run_status", RUN_OK)
    with op.batch_alter_table("sample") as batch:
        batch.create_check_constraint("ck_sample_status", GRADE_OK)
        batch.create_check_constraint("ck_sample_finish_reason", FINISH_OK)


def downgrade() -> None:
    with op.batch_alter_table("sample") as batch:
        batch.drop_constraint("ck_sample_finish_reason", type_="check")
        batch.drop_constraint("ck_sample_status", type_="check")
    with op.batch_alter_table("eval_run") as batch:
        batch.drop_constraint("ck_eval_run_status", type_="check")
