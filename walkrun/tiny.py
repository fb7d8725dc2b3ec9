"""Build tiny offline models: a locally trained byte-level BPE tokenizer and a random-init Qwen2.

Tests and demos use these so nothing is downloaded. The tokenizer uses ChatML
(`<|im_start|>role ... <|im_end|>`), eos `<|im_end|>`, pad `<|endoftext|>`, like Qwen2.5;
head_dim is 64 by default, one of the sizes vLLM's CPU attention supports.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<think>", "</think>"]

CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

# DeepSeek-R1-Distill style: the generation prompt opens the think block, so the model's output
# starts inside it and must close it (`</think>`) before the answer.
R1_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n<think>\n' }}{% endif %}"
)
TEMPLATES = {"chatml": CHATML_TEMPLATE, "r1": R1_TEMPLATE}


@dataclass(frozen=True)
class TinySize:
    hidden: int
    layers: int
    heads: int
    kv_heads: int
    intermediate: int
    vocab: int


SIZES = {
    # ~0.4M parameters: fast enough for every test
    "tiny": TinySize(hidden=128, layers=2, heads=2, kv_heads=1, intermediate=256, vocab=1024),
    # ~31M parameters: for throughput benchmarks, where per-token overhead must not dominate
    "small": TinySize(hidden=512, layers=8, heads=8, kv_heads=2, intermediate=2048, vocab=4096),
}


def _corpus(seed: int, n: int = 3000) -> list[str]:
    """Synthetic maths-flavoured text so BPE merges cover digits, LaTeX and answer phrasing."""
    rng = random.Random(seed)
    words = (
        "the sum of find let compute so answer is we have then therefore step reason "
        "please put your final within boxed problem number value total each"
    ).split()
    latex = [r"\frac{%d}{%d}", r"\sqrt{%d}", r"%d^{%d}", r"\boxed{%d}", r"(%d, %d)", r"x = %d", r"%d + %d = %d"]
    lines = []
    for _ in range(n):
        parts = []
        for _ in range(rng.randint(4, 14)):
            if rng.random() < 0.6:
                parts.append(rng.choice(words))
            else:
                t = rng.choice(latex)
                parts.append("$" + t % tuple(rng.randint(0, 99) for _ in range(t.count("%d"))) + "$")
        lines.append(" ".join(parts).capitalize() + ".")
    return lines


def build_tokenizer(vocab_size: int = 1024, seed: int = 0):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_corpus(seed), trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        bos_token=None,
        unk_token=None,
        additional_special_tokens=["<|im_start|>", "<think>", "</think>"],
    )
    fast.chat_template = CHATML_TEMPLATE
    fast.padding_side = "left"  # batched generation; transformers does not persist it, callers re-set it
    return fast


def build_tiny(
    out_dir: str | Path, size: str = "tiny", seed: int = 0, max_positions: int = 4096, template: str = "chatml"
) -> Path:
    """Write a tokenizer + random-init Qwen2ForCausalLM to `out_dir` in HF format; return the path.
    template: chatml, or r1 (the generation prompt opens `<think>`, as DeepSeek-R1-Distill's does)."""
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    spec = SIZES[size]
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tok = build_tokenizer(spec.vocab, seed)
    tok.chat_template = TEMPLATES[template]
    torch.manual_seed(seed)
    config = Qwen2Config(
        vocab_size=len(tok),
        hidden_size=spec.hidden,
        num_hidden_layers=spec.layers,
        num_attention_heads=spec.heads,
        num_key_value_heads=spec.kv_heads,
        intermediate_size=spec.intermediate,
        max_position_embeddings=max_positions,
        tie_word_embeddings=True,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
        bos_token_id=tok.convert_tokens_to_ids("<|endoftext|>"),
    )
    model = Qwen2ForCausalLM(config)
    model.generation_config.eos_token_id = tok.eos_token_id
    model.generation_config.pad_token_id = tok.pad_token_id
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out
