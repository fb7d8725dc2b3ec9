"""The training objective, once: correctness rewards and the L-GRPO length shaping.

Both training backends (OpenRLHF and the local TRL one) call these functions, and the
correctness test is always `walkrun.grading.grade`, so a reward can never disagree with
the evaluation metric.

Correctness reward r_i of a response to a problem with gold answer g:

* ``binary`` (ConciseR, Song & Zheng, "Walk Before You Run! Concise LLM Reasoning via
  Reinforcement Learning", arXiv:2505.21178): r_i = 1 if correct else 0.
* ``fatemi`` (Fatemi et al., "Concise Reasoning via Reinforcement Learning",
  arXiv:2504.05185, phase 2, as its text defines it): r_i = -1 if there is no boxed answer
  (checked first), else +1 if correct and -0.5 if boxed but wrong.
* ``fatemi-code`` (paper B's released reward, as its OpenRLHF fork computes it for the R1 runs):
  the fork grades the text after ``<|im_start|>assistant``, which for the R1 prompt still holds
  the prompt's own ``\\boxed{}``, so a box is always found: -1 never fires and a response cut at
  the budget is graded like a finished one. r_i = +1 if the (possibly cut) response's boxed
  answer is correct, else -0.5.
* ``dapo`` (DAPO, arXiv:2503.14476): r_i = +1 if correct, else -1.

Only a finished, boxed final answer earns the correctness reward. A response gets none
(binary 0; fatemi -1 without a box in its final-answer part, -0.5 with one) when

* it has no ``\\boxed{}`` final answer (an unboxed number that happens to be right earns nothing),
* it did not end with the end-of-sequence token (cut at the generation budget), or
* it is still inside a think block: ``<think>`` (opened by the response or by the chat
  template, e.g. DeepSeek-R1 distills) with no ``</think>`` after it; its box, if any, is
  reasoning, not an answer.

so a truncated rollout with a plausible number never earns +1. ``credited`` is the
correctness both backends train on (dynamic sampling, the L-GRPO all-correct test).

L-GRPO (ConciseR stage 2): for one prompt's group of n rollouts with correctness c_i and
response lengths L_i (generated tokens),

    r_i  <-  r_i + (1 - L_i / L_max)   for every i,   if c_1 = ... = c_n = 1
    r_i  <-  r_i                        otherwise

so length is optimised only once the model already solves the prompt every time ("walk
before you run"); with the binary reward a correct rollout of an all-correct group gets
1 + (1 - L_i/L_max). ``lgrpo_bonus`` returns the added term; it is clamped to [0, 1] (see
its docstring for why).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

from walkrun.grading import DEFAULT_TIMEOUT, Grade, grade

if TYPE_CHECKING:
    import torch

SCHEMES = ("binary", "fatemi", "fatemi-code", "dapo")

# Paper B's reward values (Fatemi et al. §5): correct / boxed-but-wrong / no boxed answer.
FATEMI_CORRECT = 1.0
FATEMI_BOXED_WRONG = -0.5
FATEMI_NO_BOX = -1.0


def credited(g: Grade) -> bool:
    """The response earns the correctness reward: graded correct with a boxed final answer
    (the grader already refuses truncated responses and unclosed think blocks)."""
    return bool(g.correct and g.has_boxed)


def scheme_reward(scheme: str, correct: bool, boxed: bool, graded_if_cut: bool | None = None) -> float:
    """The reward of a graded response under `scheme` (see the module docstring); `boxed`:
    a boxed answer in the final-answer part. No box means no correctness reward.
    `graded_if_cut` (fatemi-code only): the verdict on a response cut at the budget when it is
    graded as if it had finished; None for a finished response."""
    if scheme == "binary":
        return 1.0 if correct and boxed else 0.0
    if scheme == "dapo":
        return 1.0 if correct and boxed else -1.0
    if scheme == "fatemi":
        if not boxed:  # checked before correctness (paper B's rule)
            return FATEMI_NO_BOX
        return FATEMI_CORRECT if correct else FATEMI_BOXED_WRONG
    if scheme == "fatemi-code":
        ok = (correct and boxed) if graded_if_cut is None else graded_if_cut
        return FATEMI_CORRECT if ok else FATEMI_BOXED_WRONG
    raise ValueError(f"unknown reward scheme {scheme!r}; expected one of {', '.join(SCHEMES)}")


def correctness_reward(
    gold: str,
    response: str,
    scheme: str = "binary",
    timeout: float = DEFAULT_TIMEOUT,
    *,
    truncated: bool = False,
    think_opened: bool = False,
    alts: Sequence[str] = (),
) -> tuple[float, Grade]:
    """Grade `response` against `gold` with the one grader and turn the grade into a reward.

    `truncated`: the response did not end with end-of-sequence (it hit the budget);
    `think_opened`: the chat template opened a `<think>` block before it. A grading timeout or
    error earns no correctness reward (its status is in the returned `Grade` so callers can log
    it); `walkrun.grading.GradingError` (no grader could run) propagates. Raises ValueError for
    an unknown scheme.
    """
    if scheme not in SCHEMES:
        raise ValueError(f"unknown reward scheme {scheme!r}; expected one of {', '.join(SCHEMES)}")
    g = grade(gold, response, timeout=timeout, alts=alts, think_opened=think_opened, truncated=truncated)
    cut_verdict = None
    if scheme == "fatemi-code" and truncated:
        cut_verdict = credited(grade(gold, response, timeout=timeout, alts=alts, think_opened=think_opened))
    return scheme_reward(scheme, credited(g), g.has_boxed, cut_verdict), g


def lgrpo_bonus(correct: Sequence[bool], lengths: Sequence[int | float], l_max: float) -> list[float]:
    """Per-rollout L-GRPO length term for ONE prompt's group: `1 - L_i/L_max` if all are correct.

    Returns zeros when any rollout is wrong (or the group is empty). Each term is clamped to
    [0, 1]: a rollout longer than `l_max` (possible when `l_max` is set below the generation
    cap) gets 0 rather than a negative term, so inside an all-correct group the shaping can
    only reward brevity and never pushes a correct answer's reward below plain correctness
    (the paper's formula assumes L_i <= L_max, where the clamp changes nothing).
    """
    if len(correct) != len(lengths):
        raise ValueError(f"lgrpo_bonus: {len(correct)} correctness flags but {len(lengths)} lengths")
    if not (l_max > 0 and math.isfinite(l_max)):
        raise ValueError(f"lgrpo_bonus: l_max must be a positive number, got {l_max!r}")
    if not correct or not all(bool(c) for c in correct):
        return [0.0] * len(correct)
    return [min(1.0, max(0.0, 1.0 - float(n) / l_max)) for n in lengths]


def lgrpo_bonus_tensor(correct: torch.Tensor, lengths: torch.Tensor, l_max: float) -> torch.Tensor:
    """Batched `lgrpo_bonus`: `correct` and `lengths` shaped (groups, n); returns float (groups, n).

    Same formula and clamp as `lgrpo_bonus`, one row per prompt.
    """
    import torch

    if correct.shape != lengths.shape or correct.dim() != 2:
        raise ValueError(
            f"lgrpo_bonus_tensor: expected two (groups, n) tensors of equal shape, "
            f"got {tuple(correct.shape)} and {tuple(lengths.shape)}"
        )
    if not (l_max > 0 and math.isfinite(l_max)):
        raise ValueError(f"lgrpo_bonus_tensor: l_max must be a positive number, got {l_max!r}")
    all_correct = correct.bool().all(dim=1, keepdim=True)
    term = (1.0 - lengths.to(torch.float32) / float(l_max)).clamp(0.0, 1.0)
    return torch.where(all_correct, term, torch.zeros_like(term))
