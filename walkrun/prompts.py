"""The instruction every maths prompt carries, in evaluation, RL training prompts and the serve demo.

Qwen2.5-Math's `qwen-boxed` prompt (QwenLM/Qwen2.5-Math evaluation/utils.py): the problem, then
this sentence. The ConciseR and Fatemi et al. evaluations use the same sentence.
"""

from __future__ import annotations

INSTRUCTION = "Please reason step by step, and put your final answer within \\boxed{}."


def with_instruction(problem: str) -> str:
    """The user turn of a zero-shot maths prompt: the problem, then `INSTRUCTION` on its own line."""
    return f"{problem}\n{INSTRUCTION}"
