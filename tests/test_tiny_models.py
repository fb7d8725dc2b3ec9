"""Tiny offline models: built locally, loadable by transformers with the hub offline."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_tiny_model_round_trips_offline(tiny_model):
    code = f"""
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer
tok = AutoTokenizer.from_pretrained({str(tiny_model)!r})
model = AutoModelForCausalLM.from_pretrained({str(tiny_model)!r})
text = tok.apply_chat_template([{{"role": "user", "content": "What is 1+1?"}}], tokenize=False, add_generation_prompt=True)
assert text.startswith("<|im_start|>user\\nWhat is 1+1?<|im_end|>"), text
assert text.endswith("<|im_start|>assistant\\n"), text
ids = tok(text, return_tensors="pt")
assert tok.decode(ids.input_ids[0]) == text
torch.manual_seed(0)
out = model.generate(**ids, max_new_tokens=8, do_sample=False)
assert out.shape[1] == ids.input_ids.shape[1] + 8 or out[0, -1].item() == tok.eos_token_id
print(type(model).__name__, tok.eos_token, tok.pad_token, sum(p.numel() for p in model.parameters()))
"""
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    name, eos, pad, n_params = out.stdout.split()[-4:]
    assert (name, eos, pad) == ("Qwen2ForCausalLM", "<|im_end|>", "<|endoftext|>")
    assert 100_000 < int(n_params) < 2_000_000


def test_tiny_model_config_fits_vllm_cpu_attention(tiny_model):
    cfg = json.loads((tiny_model / "config.json").read_text())
    assert cfg["model_type"] == "qwen2"
    head_dim = cfg["hidden_size"] // cfg["num_attention_heads"]
    assert head_dim in (32, 64, 80, 96, 112, 128, 160, 192, 224, 256, 512)


def test_cli_builds_a_loadable_model(tmp_path):
    walkrun = Path(sys.executable).with_name("walkrun")
    out = subprocess.run(
        [str(walkrun), "model", "tiny", str(tmp_path / "m")], capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert "wrote tiny Qwen2" in out.stdout
    for f in ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"):
        assert (tmp_path / "m" / f).is_file(), f
