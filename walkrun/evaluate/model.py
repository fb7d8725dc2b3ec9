"""Loading a checkpoint for evaluation: its folder, config and tokenizer checked, the counting
lm-eval backend (hf or vllm) built once, and freed afterwards."""

from __future__ import annotations

import os
from importlib.util import find_spec
from pathlib import Path
from typing import Any

from walkrun.evaluate import backends
from walkrun.evaluate.config import EvalConfig
from walkrun.integrations import lm_eval as lm_eval_integration
from walkrun.integrations import vllm as vllm_integration
from walkrun.settings import WalkrunError, error_line

VLLM_BATCH = 1 << 16
# Any of these makes a folder's tokenizer; with none, transformers builds an empty one silently.
TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json", "tokenizer_config.json")


def check_model(model: str) -> tuple[str, Any, Any]:
    """(source, config, tokenizer) of a checkpoint; WalkrunError if it is missing or unreadable."""
    p = Path(model).expanduser()
    try:
        return _check_model(model, p)
    except PermissionError as e:
        raise WalkrunError(f"cannot load model {model!r}: permission denied on {e.filename or p}") from None


def _check_model(model: str, p: Path) -> tuple[str, Any, Any]:
    from transformers import AutoConfig, AutoTokenizer

    if p.exists():
        source = str(p.resolve())
        if not p.is_dir():
            raise WalkrunError(f"model {model!r} is a file; pass the folder holding config.json and the weights")
        if not (p / "config.json").is_file():
            raise WalkrunError(
                f"model folder {source} has no config.json; is it a Hugging Face-format checkpoint "
                "(an OpenRLHF global_stepN_hf folder, a `walkrun model tiny` folder)?"
            )
        if not any((p / f).is_file() for f in TOKENIZER_FILES):
            raise WalkrunError(f"model folder {source} has no tokenizer (none of {', '.join(TOKENIZER_FILES)})")
    elif model.startswith((".", "/", "~")) or model.count("/") > 1 or "\\" in model:
        raise WalkrunError(f"model path {model!r} does not exist")
    else:
        source = model  # a hub id
    try:
        config = AutoConfig.from_pretrained(source)
        tokenizer = AutoTokenizer.from_pretrained(source)
    except Exception as e:
        first = error_line(e)
        hint = "" if p.exists() else " (no such local folder; as a hub id it could not be fetched: offline?)"
        raise WalkrunError(f"cannot load model {model!r}{hint}: {type(e).__name__}: {first}") from None
    if not tokenizer("1 + 1 = 2", add_special_tokens=False)["input_ids"]:
        raise WalkrunError(f"cannot load model {model!r}: its tokenizer turns text into no tokens")
    if p.exists():
        check_weights(p)
    return source, config, tokenizer


def check_weights(folder: Path) -> None:
    """WalkrunError if a local checkpoint's safetensors weights are missing or damaged. Reads
    only each file's header (safetensors checks it covers the whole file, so a truncated copy
    fails): a bad checkpoint is refused before anything is planned or written, not after the
    model load."""
    from safetensors import SafetensorError, safe_open

    index = folder / "model.safetensors.index.json"
    files = sorted(folder.glob("*.safetensors"))
    if index.is_file():
        import json

        try:
            shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        except (ValueError, KeyError, TypeError, AttributeError):
            raise WalkrunError(f"cannot load model {str(folder)!r}: {index.name} is not a weight index") from None
        missing = [s for s in shards if not (folder / s).is_file()]
        if missing:
            raise WalkrunError(
                f"cannot load model {str(folder)!r}: weight shard {missing[0]} (in {index.name}) is missing"
            )
    for f in files:
        try:
            with safe_open(str(f), "pt"):
                pass
        except (SafetensorError, OSError) as e:
            first = error_line(e)
            raise WalkrunError(
                f"cannot load model {str(folder)!r}: weights {f.name} damaged or truncated: {first}"
            ) from None


def context_length(config, tokenizer) -> int:
    """The model's context in tokens: from its config (an endpoint's from the server), else the
    tokenizer's limit, else 2048."""
    for attr in ("max_position_embeddings", "n_positions", "max_seq_len", "seq_length"):
        v = getattr(config, attr, None)
        if isinstance(v, int) and v > 0:
            return v
    v = getattr(tokenizer, "model_max_length", None)
    return v if isinstance(v, int) and 0 < v < 10**7 else 2048


def backend_version(backend: str) -> str:
    from importlib.metadata import version

    parts = [f"lm-eval=={version('lm_eval')}"]
    if backend == "endpoint":
        parts.append("api")  # what runs behind the endpoint is its own business: the URL names it
    elif backend == "vllm":
        parts.append(f"vllm=={vllm_integration.vllm_version()}")
    else:
        parts += [f"transformers=={version('transformers')}", f"torch=={version('torch')}"]
    return ";".join(parts)


def engine_context(cfg: EvalConfig, need: int, context: int) -> int:
    """The vLLM engine's max_model_len: --max-model-len if given (checked: it must hold the longest
    prompt plus the budget, `need`, and stay within the model's context), else `need` plus a little
    slack, never past the model's context (vLLM refuses a longer max_model_len)."""
    if cfg.max_model_len is None:
        return min(need + 8, context)
    if cfg.max_model_len < need:
        raise WalkrunError(
            f"--max-model-len {cfg.max_model_len} is too short: the longest prompt plus the generation budget "
            f"needs {need} tokens; raise it to at least {need} or lower --max-new-tokens"
        )
    if cfg.max_model_len > context:
        raise WalkrunError(f"--max-model-len {cfg.max_model_len} is beyond the model's context of {context} tokens")
    return cfg.max_model_len


def vllm_engine_args(cfg: EvalConfig) -> dict[str, Any]:
    """The parallelism and memory settings given for the vLLM engine (lm-eval passes them on)."""
    names = ("tensor_parallel_size", "data_parallel_size", "gpu_memory_utilization")
    return {n: getattr(cfg, n) for n in names if getattr(cfg, n) is not None}


def load_lm(cfg: EvalConfig, source: str, max_model_len: int):
    """The counting lm-eval backend for this checkpoint (the model is loaded here, once).
    max_model_len: the vLLM engine's context (`engine_context`). An --endpoint evaluation's
    client is `walkrun.evaluate.endpoint.load`."""
    try:
        if cfg.backend == "hf":
            import torch

            device = "cuda" if torch.cuda.is_available() else "cpu"
            return backends.hf_backend_class()(
                pretrained=source, device=device, dtype=cfg.dtype, batch_size=cfg.batch_size, trust_remote_code=False
            )
        kwargs = vllm_engine_args(cfg)
        if kwargs.get("data_parallel_size", 1) > 1 and find_spec("ray") is None:
            raise WalkrunError("--data-parallel-size > 1 needs Ray (lm-eval runs each replica as a Ray task)")
        os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")  # before vLLM's import sets up its logger
        cls = backends.vllm_backend_class()
        if vllm_integration.cpu_build_installed():
            # CPU build: a 1 GiB KV cache (default is ~90 % of RAM) and no graph capture (halves start-up).
            os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
            os.environ.setdefault("VLLM_TARGET_DEVICE", "cpu")
            kwargs["enforce_eager"] = True
            vllm_integration.allow_amx()  # an engine run in this process; spawned workers: the engine guards
        # An integer batch larger than any chunk: one engine call per lm-eval call, as with
        # "auto", but without vLLM's own per-call progress bars (lm-eval enables them for "auto").
        return cls(
            pretrained=source,
            dtype=cfg.dtype,
            seed=cfg.seed,
            max_model_len=max_model_len,
            batch_size=VLLM_BATCH,
            **kwargs,
        )
    except WalkrunError:
        raise
    except Exception as e:
        first = error_line(e)
        raise WalkrunError(
            f"cannot load model {cfg.model!r} with the {cfg.backend} backend: {type(e).__name__}: {first}"
        ) from None


def close_lm(lm) -> None:
    """Free the model; for vLLM also stop its engine-core process now rather than at exit."""
    if lm is None:
        return
    lm_eval_integration.close(lm)
    import gc

    del lm
    gc.collect()
