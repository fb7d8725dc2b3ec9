"""The stages a checkpoint can belong to: one list for training configs, evaluation and the DB
(which enforces it with a CHECK constraint)."""

from __future__ import annotations

from enum import StrEnum

from walkrun.settings import WalkrunError


class Stage(StrEnum):
    BASE = "base"  # the pretrained model a recipe starts from
    SFT = "sft"  # supervised warm start
    STAGE1 = "stage1"  # GRPO++
    STAGE2 = "stage2"  # L-GRPO (or a second, length-aware phase)
    CONTROL = "control"  # stage 1's reward continued for stage 2's budget
    TRAIN = "train"  # a training checkpoint whose stage nobody recorded
    EXTERNAL = "external"  # a model walkrun did not train


STAGES = tuple(s.value for s in Stage)
TRAINING_STAGES = (Stage.STAGE1.value, Stage.STAGE2.value, Stage.CONTROL.value)
STAGE_HELP = "Checkpoint stage: " + " | ".join(STAGES) + "."


def check_stage(value: str | None, what: str = "stage") -> str | None:
    """`value` if it is a known stage (or None); else a WalkrunError listing the stages."""
    if value is not None and value not in STAGES:
        raise WalkrunError(f"{what} must be one of {', '.join(STAGES)}, got {value!r}")
    return value
