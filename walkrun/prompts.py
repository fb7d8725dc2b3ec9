"""Prompt styles: how a maths problem becomes what a model is sent, in RL training and in evaluation.

A style is a user turn built from the problem, and optionally a system turn. Training (both
backends) renders a problem with the run's `prompt_style` and records it in the run's config;
evaluation renders it with the checkpoint's training style unless a protocol or `--prompt` says
otherwise, and records the style's `id` as the evaluation's prompt template, so evaluations under
different prompts are never compared as one.

* ``boxed``: the problem, then Qwen2.5-Math's `qwen-boxed` sentence on its own line, as the user
  turn (walkrun's evaluation default when a checkpoint's training prompt is unknown). Under
  Qwen2.5-Math's chat template, which adds the same sentence as its default system turn, the
  sentence appears twice.
* ``qwen25-math-cot``: Qwen2.5-Math's chain-of-thought prompt (QwenLM/Qwen2.5-Math evaluation,
  prompt type `qwen25-math-cot`): the sentence as the system turn, the problem as the user turn.
* ``r1-cot``: paper B's (Fatemi et al., arXiv:2504.05185) released training input and evaluation
  prompt type: the problem, then "Let's think step by step and output the final answer within
  \\boxed{}.", one user turn, no system turn.
* ``conciser``: paper A's (ConciseR, arXiv:2505.21178) training prompt from its released data
  preprocessing (`examples/data_preprocess/json2parquet.py`): the R1-Zero-style "A conversation
  between User and Assistant..." text with <think>/<answer> tags and the \\boxed{} instruction, the
  problem in place of {query}, sent as one user message. Kept verbatim, including its literal
  `<|startoftext|>` (plain text to Qwen's tokenizer).
"""

from __future__ import annotations

from dataclasses import dataclass

from walkrun.settings import WalkrunError

INSTRUCTION = "Please reason step by step, and put your final answer within \\boxed{}."
R1_COT = "Let's think step by step and output the final answer within \\boxed{}."
CONCISER = (
    "<|startoftext|>A conversation between User and Assistant. The User asks a question, and the Assistant "
    "solves it. The Assistant first thinks about the reasoning process in the mind and then provides the User "
    "with the answer. The reasoning process is enclosed within <think> </think> and answer is enclosed within "
    "<answer> </answer> tags, respectively, i.e., <think> reasoning process here </think> <answer> answer here "
    "</answer>. Please reason step by step, and put your final answer within \\boxed{}.\n\nUser:\n{problem}\n\n"
    "Assistant:\n"
)


@dataclass(frozen=True)
class PromptStyle:
    name: str
    id: str  # what an evaluation records as its prompt template (bump the version when the text changes)
    user: str  # the user turn, {problem} replaced by the problem
    system: str | None
    source: str  # provenance ("KIND: detail", walkrun.train.provenance)

    def user_text(self, problem: str) -> str:
        return self.user.replace("{problem}", problem)

    def plain_text(self, problem: str) -> str:
        """The prompt for a model without a chat template: the system turn (if any), a blank line,
        then the user turn."""
        return "\n\n".join(filter(None, [self.system, self.user_text(problem)]))

    def messages(self, problem: str) -> list[dict]:
        """Chat messages for one problem (the model's chat template renders them)."""
        turns = [{"role": "system", "content": self.system}] if self.system else []
        return turns + [{"role": "user", "content": self.user_text(problem)}]


STYLES: dict[str, PromptStyle] = {
    s.name: s
    for s in (
        PromptStyle(
            "boxed",
            "zero-shot-boxed-v1",
            "{problem}\n" + INSTRUCTION,
            None,
            "ours: the problem, then Qwen2.5-Math's qwen-boxed sentence, as the user turn",
        ),
        PromptStyle(
            "qwen25-math-cot",
            "qwen25-math-cot-v1",
            "{problem}",
            INSTRUCTION,
            "method code: Qwen2.5-Math's evaluation prompt type qwen25-math-cot (the sentence as system turn)",
        ),
        PromptStyle(
            "r1-cot",
            "r1-cot-v1",
            "{problem} " + R1_COT,
            None,
            "paper B code: r1_prompt (training data) and the r1-cot prompt type of its evaluation",
        ),
        PromptStyle(
            "conciser",
            "conciser-v1",
            CONCISER,
            None,
            "paper A code: examples/data_preprocess/json2parquet.py, one user message",
        ),
    )
}


def names() -> list[str]:
    return list(STYLES)


def get(name: str) -> PromptStyle:
    try:
        return STYLES[name]
    except KeyError:
        raise WalkrunError(f"unknown prompt style {name!r}; known: {', '.join(STYLES)}") from None


def with_instruction(problem: str) -> str:
    """The user turn of the `boxed` style: the problem, then `INSTRUCTION` on its own line."""
    return STYLES["boxed"].user_text(problem)
