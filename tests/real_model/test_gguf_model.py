"""`walkrun model smollm2` / `from-gguf`: the packaged GGUF as a standard HF folder that is the
same bytes every time and answers like the model it is."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

WALKRUN = str(Path(sys.executable).with_name("walkrun"))


def _digests(folder: Path) -> dict[str, str]:
    return {f.name: hashlib.sha256(f.read_bytes()).hexdigest() for f in sorted(folder.iterdir()) if f.is_file()}


def test_smollm2_folder_is_a_standard_hf_model_with_its_tokenizer_and_template(smollm2, tmp_path):
    out = tmp_path / "smol"
    r = subprocess.run([WALKRUN, "model", "smollm2", str(out)], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "LlamaForCausalLM (hidden 576, 30 layers, vocab 49152)" in r.stdout
    assert _digests(out) == _digests(smollm2)  # copied from the cache, not converted again
    assert {"model.safetensors", "config.json", "tokenizer.json", "chat_template.jinja"} <= set(_digests(out))
    config = json.loads((out / "config.json").read_text())
    assert "quantization_config" not in config and config["dtype"] == "float32"
    again = subprocess.run([WALKRUN, "model", "smollm2", str(out)], capture_output=True, text=True, timeout=600)
    assert again.returncode != 0 and "already exists" in again.stderr and "Traceback" not in again.stderr


def test_conversion_is_reproducible_byte_for_byte(smollm2, tmp_path):
    from walkrun.gguf_model import smollm2_gguf

    r = subprocess.run(
        [WALKRUN, "model", "from-gguf", str(smollm2_gguf()), str(tmp_path / "again")],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    assert _digests(tmp_path / "again") == _digests(smollm2)


def test_the_converted_model_answers_like_smollm2(smollm2, smollm2_tokenizer):
    """The weights survived dequantisation and the copy: English reads as likely (a broken copy or
    a random model scores near ln(49152) = 10.8 nats per token) and a question the 135M model
    knows gets its answer. (Arithmetic is no test: greedy SmolLM2-135M says "12 + 7 = 8".)"""
    import torch
    from transformers import AutoModelForCausalLM

    tok = smollm2_tokenizer
    model = AutoModelForCausalLM.from_pretrained(smollm2)
    text = (
        "The quick brown fox jumps over the lazy dog. Paris is the capital of France, and Berlin is "
        "the capital of Germany. Water boils at one hundred degrees Celsius at sea level."
    )
    ids = tok(text, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        nll = model(ids, labels=ids).loss.item()
    assert nll < 4.0, nll  # measured 2.86 nats per token
    prompt = tok.apply_chat_template(
        [{"role": "user", "content": "What is the capital of France?"}],
        add_generation_prompt=True,
        return_tensors="pt",
        return_dict=True,
    )
    with torch.no_grad():
        out = model.generate(**prompt, max_new_tokens=12, do_sample=False)
    answer = tok.decode(out[0, prompt["input_ids"].shape[1] :], skip_special_tokens=True)
    assert "Paris" in answer, answer


def test_missing_or_unreadable_gguf_is_one_line(tmp_path):
    bad = tmp_path / "x.gguf"
    bad.write_bytes(b"not a gguf")
    for path, message in [(tmp_path / "none.gguf", "does not exist"), (bad, "cannot read")]:
        r = subprocess.run(
            [WALKRUN, "model", "from-gguf", str(path), str(tmp_path / "o")], capture_output=True, text=True
        )
        assert r.returncode != 0 and message in r.stderr and "Traceback" not in r.stderr
