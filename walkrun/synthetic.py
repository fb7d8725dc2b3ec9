"""Synthetic running-sum task for tiny models: data, a character tokenizer, a ~199k-param Qwen2.

The task: the prompt is `3+5+8+2=`; a
concise completion is `3+5=8;8+8=16;16+2=18;\\boxed{18}` then `<eos>`. The verbose style adds a
redundant re-check after a step (`3+5=8;r3+5=8;...`). The SFT demonstrator is noisy (each
step is off by 1 or 2 with probability 0.15 and the chain continues from the wrong value),
so a trained model is right about 55-65 % of the time when sampled at T=1 while its greedy
output is nearly always right: RL here sharpens the sampling distribution, and the metric
that shows it is sampled pass@1 at T=1, reported beside greedy accuracy.

The answer is written `\\boxed{N}` so `walkrun.grading` (math-verify, boxed answer first)
grades it like any benchmark; a `#N` ending would not work: math-verify ignores it and
grades the last equation instead. `\\boxed{` is one token, so a completion is one token
longer than the `#N` form of the notes.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from walkrun.grading import grade_many

BOX = "\\boxed{"
CHARS = "0123456789+=;r}"
PAD, EOS, UNK = "<pad>", "<eos>", "<unk>"
VOCAB: list[str] = [PAD, EOS, UNK, BOX, *CHARS]  # 19 tokens; ids are list positions
TOKEN_ID = {t: i for i, t in enumerate(VOCAB)}
_PIECES = re.compile(r"\\boxed\{|.", re.S)

MAX_POSITIONS = 128  # prompt <= 12 tokens + completion <= 96: room to spare
MAX_NEW_TOKENS = 96
NOISE_P = 0.15
MIN_TERMS, MAX_TERMS = 3, 6

# Verbosity mixes of the SFT data. v2 (recommended): re-check probability q per
# example from {.5, .75, 1} and 10 % direct answers, so verbose is the majority style and
# the only short mode is worse (a direct answer gets the same noise and is hard to learn).
MIXES: dict[str, dict[str, Any]] = {
    "v1": {"recheck": (0.0, 0.3, 0.7, 1.0), "direct": 0.0},
    "v2": {"recheck": (0.5, 0.75, 1.0), "direct": 0.10},
    # The shortcut toy: as v2 but 30 % direct answers, and those are noise-free. A direct answer
    # skips the work: a tiny model computes a short sum in one token far more reliably than a
    # long one, so a length reward that pays for brevity whatever the group's accuracy can trade
    # hard-problem accuracy for length. "shortcut-noisy" keeps v2's noisy direct answers.
    "shortcut": {"recheck": (0.5, 0.75, 1.0), "direct": 0.30, "direct_noise": 0.0},
    "shortcut-noisy": {"recheck": (0.5, 0.75, 1.0), "direct": 0.30},
}

# Held-out evaluation problems: fixed by this seed, never used for SFT or RL prompts.
EVAL_SEED = 20240521
EVAL_SIZE = 500
TASK_VERSION = "1"
PROMPT_TEMPLATE = "{problem}"  # the problem already ends with "="; no chat template, no system text

# For chat endpoints (vLLM serving): the last user message, spaces dropped, "=" appended if missing.
CHAT_TEMPLATE = (
    "{%- set ns = namespace(p='') -%}"
    "{%- for m in messages -%}{%- if m['role'] == 'user' -%}{%- set ns.p = m['content'] -%}{%- endif -%}{%- endfor -%}"
    "{%- set p = ns.p | replace(' ', '') -%}"
    "{{ p }}{%- if not p.endswith('=') -%}={%- endif -%}"
)


# ---------------------------------------------------------------- data


def random_terms(rng: random.Random) -> list[int]:
    return [rng.randint(0, 9) for _ in range(rng.randint(MIN_TERMS, MAX_TERMS))]


def prompt_of(terms: list[int]) -> str:
    return "+".join(map(str, terms)) + "="


def answer_of(terms: list[int]) -> str:
    return str(sum(terms))


def terms_of(prompt: str) -> list[int]:
    return [int(t) for t in prompt.rstrip("=").split("+")]


def _noisy(value: int, rng: random.Random, noise_p: float) -> int:
    if rng.random() >= noise_p:
        return value
    d = rng.choice((-2, -1, 1, 2))
    return value + d if value + d >= 0 else value - d  # no minus sign in the vocabulary


def demonstration(
    terms: list[int], rng: random.Random, recheck: float, direct: bool = False, noise_p: float = NOISE_P
) -> str:
    """One demonstrator completion (no eos). `recheck`: probability of a re-check after each step.

    A direct answer runs the same noisy chain silently, so it is wrong as often as a worked one
    would be; with fewer tokens to condition on it is also harder for the model to learn.
    """
    acc = terms[0]
    steps = []
    for t in terms[1:]:
        value = _noisy(acc + t, rng, noise_p)
        step = f"{acc}+{t}={value}"
        steps.append(step)
        if rng.random() < recheck:
            steps.append("r" + step)
        acc = value
    final = f"{BOX}{acc}}}"
    return final if direct else ";".join(steps) + ";" + final


def concise_solution(terms: list[int]) -> str:
    """The shortest correct worked completion (what stage 2 should converge to)."""
    return demonstration(terms, random.Random(0), recheck=0.0, noise_p=0.0)


def _eval_problems() -> list[list[int]]:
    rng = random.Random(EVAL_SEED)
    seen: set[str] = set()
    out: list[list[int]] = []
    while len(out) < EVAL_SIZE:
        terms = random_terms(rng)
        p = prompt_of(terms)
        if p not in seen:
            seen.add(p)
            out.append(terms)
    return out


_EVAL_CACHE: list[list[int]] | None = None


def _eval_set() -> list[list[int]]:
    global _EVAL_CACHE
    if _EVAL_CACHE is None:
        _EVAL_CACHE = _eval_problems()
    return _EVAL_CACHE


def held_out_prompts() -> frozenset[str]:
    return frozenset(prompt_of(t) for t in _eval_set())


def eval_rows(limit: int | None = None) -> list[dict]:
    """The held-out evaluation set as benchmark rows `{id, problem, answer, source, n_terms}`.

    Deterministic (fixed seed), at most EVAL_SIZE rows; the prompt to send is
    `PROMPT_TEMPLATE.format(problem=row["problem"])`, i.e. the problem itself, without a chat
    template, and generation should stop at the tokenizer's eos (`<eos>`).
    """
    n = EVAL_SIZE if limit is None else max(0, min(int(limit), EVAL_SIZE))
    return [
        {
            "id": f"synthetic-{i:04d}",
            "problem": prompt_of(t),
            "answer": answer_of(t),
            "source": "walkrun synthetic running sums",
            "n_terms": len(t),
        }
        for i, t in enumerate(_eval_set()[:n])
    ]


def train_terms(rng: random.Random) -> Iterator[list[int]]:
    """Endless random problems, skipping the held-out evaluation problems."""
    held = held_out_prompts()
    while True:
        t = random_terms(rng)
        if prompt_of(t) not in held:
            yield t


def sft_example(terms: list[int], rng: random.Random, mix: str = "v2") -> tuple[str, str]:
    """(prompt, completion) from the demonstrator under a verbosity mix (see MIXES)."""
    spec = MIXES[mix]
    direct = rng.random() < spec["direct"]
    q = rng.choice(spec["recheck"])
    noise = spec.get("direct_noise", NOISE_P) if direct else NOISE_P
    return prompt_of(terms), demonstration(terms, rng, recheck=q, direct=direct, noise_p=noise)


def rl_rows(n: int, seed: int = 0) -> list[dict]:
    """`n` RL prompts `{prompt, answer}` (held-out problems excluded)."""
    it = train_terms(random.Random(seed))
    return [{"prompt": prompt_of(t), "answer": answer_of(t)} for t in (next(it) for _ in range(n))]


# ---------------------------------------------------------------- tokenizer and model


def encode(text: str) -> list[int]:
    """Token ids of `text` without going through the HF tokenizer (same ids; fast for SFT batches)."""
    return [TOKEN_ID.get(p, TOKEN_ID[UNK]) for p in _PIECES.findall(text)]


def build_tokenizer():
    """A WordLevel tokenizer over VOCAB: one token per character, `\\boxed{` as one token."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.WordLevel(vocab=dict(TOKEN_ID), unk_token=UNK))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex(_PIECES.pattern), behavior="isolated")
    tok.decoder = decoders.Fuse()  # without it, decode() puts spaces between characters
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token=PAD, eos_token=EOS, unk_token=UNK, model_max_length=MAX_POSITIONS
    )
    fast.padding_side = "left"  # batched generation; callers loading it re-set this
    fast.chat_template = CHAT_TEMPLATE
    return fast


def build_model(
    out_dir: str | Path, seed: int = 0, heads: int = 2, hidden: int = 64, layers: int = 3, intermediate: int = 256
) -> Path:
    """Write the char tokenizer and a random-init Qwen2ForCausalLM (~199k params) to `out_dir`.

    heads=2 gives head_dim 32, the smallest head size vLLM's CPU attention accepts (the notes'
    4 heads of 16 load in transformers but not in vLLM-CPU); q/k/v/o sizes, hence the parameter
    count, do not depend on the number of heads.
    """
    import torch
    from transformers import GenerationConfig, Qwen2Config, Qwen2ForCausalLM

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tok = build_tokenizer()
    torch.manual_seed(seed)
    config = Qwen2Config(
        vocab_size=len(VOCAB),
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=heads,
        intermediate_size=intermediate,
        max_position_embeddings=MAX_POSITIONS,
        tie_word_embeddings=True,
        pad_token_id=TOKEN_ID[PAD],
        eos_token_id=TOKEN_ID[EOS],
        bos_token_id=None,
    )
    model = Qwen2ForCausalLM(config)
    model.generation_config = GenerationConfig(eos_token_id=TOKEN_ID[EOS], pad_token_id=TOKEN_ID[PAD])
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out


def load(path: str | Path):
    """(model, tokenizer) from an HF folder, tokenizer left-padded for batched generation."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(path))
    tok.padding_side = "left"
    model = AutoModelForCausalLM.from_pretrained(str(path), dtype="float32")
    return model, tok


# ---------------------------------------------------------------- quick in-process evaluation


def generate(
    model,
    tok,
    prompts: list[str],
    k: int = 1,
    temperature: float = 1.0,
    max_new_tokens: int = MAX_NEW_TOKENS,
    batch_size: int = 256,
) -> list[tuple[str, int, bool]]:
    """Sample `k` completions per prompt (greedy when temperature == 0; then k must be 1).

    Returns (text, n_tokens incl. eos, truncated) per completion, prompt-major (p0s0, p0s1, ...).
    """
    import torch

    was_training = model.training
    model.eval()
    out = []
    step = max(1, batch_size // k)
    try:
        for i in range(0, len(prompts), step):
            chunk = prompts[i : i + step]
            enc = tok(chunk, return_tensors="pt", padding=True, add_special_tokens=False)
            kwargs = dict(max_new_tokens=max_new_tokens, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
            if temperature > 0:
                kwargs.update(do_sample=True, temperature=temperature, top_k=0, top_p=1.0, num_return_sequences=k)
            else:
                kwargs.update(do_sample=False)
            with torch.no_grad():
                seqs = model.generate(**enc, **kwargs)
            gen = seqs[:, enc["input_ids"].shape[1] :]
            for row in gen.tolist():
                n = row.index(tok.eos_token_id) + 1 if tok.eos_token_id in row else len(row)
                truncated = tok.eos_token_id not in row
                text = tok.decode(row[:n], skip_special_tokens=True)
                out.append((text, n, truncated))
    finally:
        model.train(was_training)
    return out


def evaluate(
    model_or_path, n: int = 200, k: int = 4, greedy: bool = True, seed: int = 0, max_new_tokens: int = MAX_NEW_TOKENS
) -> dict:
    """Sampled pass@1 (T=1, `k` samples on `n` held-out problems) and greedy accuracy, with lengths.

    A quick in-process check for training curves and the demo's before/after table; graded by
    `walkrun.grading`. The stored, comparable evaluation is `walkrun eval` on the `synthetic` benchmark.
    """
    import torch

    if isinstance(model_or_path, (str, Path)):
        model, tok = load(model_or_path)
    else:
        model, tok = model_or_path
    rows = eval_rows(n)
    prompts = [PROMPT_TEMPLATE.format(problem=r["problem"]) for r in rows]
    result: dict = {"n_problems": len(rows), "k": k}
    if k > 0:
        torch.manual_seed(seed)
        samples = generate(model, tok, prompts, k=k, temperature=1.0, max_new_tokens=max_new_tokens)
        golds = [r["answer"] for r in rows for _ in range(k)]
        grades = grade_many(golds, [s[0] for s in samples], truncated=[s[2] for s in samples])
        result.update(_summary(samples, grades, ""))
    if greedy:
        samples = generate(model, tok, prompts, k=1, temperature=0.0, max_new_tokens=max_new_tokens)
        grades = grade_many([r["answer"] for r in rows], [s[0] for s in samples], truncated=[s[2] for s in samples])
        result.update(_summary(samples, grades, "greedy_"))
    return result


def _summary(samples, grades, prefix: str) -> dict:
    n = len(samples)
    texts = [s[0] for s in samples]
    return {
        prefix + ("accuracy" if prefix else "pass@1[avg-of-k]"): sum(g.correct for g in grades) / n,
        prefix + "mean_tokens": sum(s[1] for s in samples) / n,
        prefix + "truncation_rate": sum(s[2] for s in samples) / n,
        prefix + "no_box_rate": sum(BOX not in t for t in texts) / n,
        prefix + "rechecks": sum(t.count(";r") for t in texts) / n,
        prefix + "direct_rate": sum(t.startswith(BOX) for t in texts) / n,
    }
