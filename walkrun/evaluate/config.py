"""The settings of one evaluation (`walkrun eval`, and each checkpoint of `walkrun watch`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import urlsplit, urlunsplit

from walkrun import prompts
from walkrun.evaluate import protocols
from walkrun.options import DB_HELP
from walkrun.settings import WalkrunError
from walkrun.stages import STAGE_HELP, check_stage

DEFAULT_TASKS = ("aime24", "amc23", "math500")
BACKENDS = ("hf", "vllm")
ENDPOINT_BACKEND = "endpoint"  # what an --endpoint evaluation records as its backend
VLLM_ONLY = ("tensor_parallel_size", "data_parallel_size", "gpu_memory_utilization", "max_model_len")


APIS = ("chat", "completions")
API_PATHS = {"chat": "/chat/completions", "completions": "/completions"}  # under the base URL


def base_url(url: str) -> str:
    """An --endpoint's OpenAI base URL (`.../v1`), without credentials, query or fragment."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise WalkrunError(f"--endpoint must be an http(s) URL such as http://127.0.0.1:8000/v1, got {url!r}")
    host = parts.hostname + (f":{parts.port}" if parts.port else "")
    path = parts.path.rstrip("/")
    for suffix in API_PATHS.values():
        if path.endswith(suffix):
            path = path[: -len(suffix)]
    if not path:
        path = "/v1"
    return urlunsplit((parts.scheme, host, path, "", ""))


def default_backend() -> str:
    """What `--backend auto` means on this machine: vllm with a CUDA GPU, hf without."""
    import torch

    return "vllm" if torch.cuda.is_available() else "hf"


@dataclass
class EvalConfig:
    model: str = field(metadata={"help": "Checkpoint: a local HF-format folder or a hub model id."})
    protocol: str = field(
        default="default",
        metadata={
            "help": "Evaluation protocol (walkrun/evaluate/protocols.yaml: default, greedy, conciser, r1, fatemi, "
            "fatemi-qwen-math, fatemi-temperature sweep); the flags below override it into a derived protocol."
        },
    )
    tasks: list[str] = field(
        default_factory=lambda: list(DEFAULT_TASKS),
        metadata={"help": "Task names (aime24, amc23, math500, aime25, minerva, olympiadbench, ...)."},
    )
    backend: str = field(
        default="auto",
        metadata={
            "help": "lm-eval backend: hf (transformers), vllm, or auto: vllm when torch sees a CUDA GPU, hf "
            "otherwise (resolved before anything is stored: the DB records hf or vllm)."
        },
    )
    endpoint: str | None = field(
        default=None,
        metadata={
            "help": "Evaluate an OpenAI-compatible server instead of loading a model: its base URL "
            "(http://host:port/v1); --model is then the served model name. The key comes from $OPENAI_API_KEY "
            "(or --api-key-env)."
        },
    )
    api: str = field(
        default="chat",
        metadata={
            "help": "--endpoint only: chat (/chat/completions: the server applies the chat template) or completions."
        },
    )
    tokenizer: str | None = field(
        default=None,
        metadata={
            "help": "--endpoint only: the served model's tokenizer (folder or hub id), for prompt-length checks, "
            "the model-derived budget and the think/answer split when the server reports none."
        },
    )
    api_key_env: str = field(
        default="OPENAI_API_KEY",
        metadata={"help": "--endpoint only: environment variable holding the API key (never stored or printed)."},
    )
    concurrency: int = field(default=8, metadata={"help": "--endpoint only: requests in flight at once."})
    max_retries: int = field(
        default=6,
        metadata={"help": "--endpoint only: attempts per request (exponential back-off, 1 s doubling to 10 s)."},
    )
    request_timeout: float = field(default=600.0, metadata={"help": "--endpoint only: seconds one request may take."})
    samples: int | None = field(
        default=None,
        metadata={
            "help": "Samples per problem k (default: the task's `repeats`); k=1 means greedy unless a temperature is given."
        },
    )
    temperature: float | None = field(default=None, metadata={"help": "Sampling temperature (default: task's, 0.6)."})
    top_p: float | None = field(default=None, metadata={"help": "Nucleus sampling top_p (default: task's, 0.95)."})
    max_new_tokens: int | None = field(
        default=None,
        metadata={
            "help": "Generation budget per response (default: the protocol's, else the task's cap, else the "
            "model's context minus the longest prompt, at most 32768)."
        },
    )
    prompt: str | None = field(
        default=None,
        metadata={
            "help": "Prompt style for the maths tasks (walkrun.prompts: conciser, r1-cot, qwen25-math-cot, boxed). "
            "Default: the protocol's; a protocol that leaves it open uses the style the checkpoint was trained "
            "with (its run folder records it), else boxed. A style other than the protocol's derives a protocol."
        },
    )
    limit: int | None = field(default=None, metadata={"help": "Only the first N problems of each task."})
    name: str | None = field(default=None, metadata={"help": "Display name of the checkpoint in the DB."})
    db: str | None = field(default=None, metadata={"help": DB_HELP})
    data: str | None = field(
        default=None, metadata={"help": "Benchmark data folder (default: WALKRUN_DATA; unset: the hub)."}
    )
    chunk_size: int | None = field(
        default=None,
        metadata={
            "help": "Problems per lm-eval call (default: all pending problems in one call, so the engine stays "
            "full; with --data-parallel-size > 1, 1024 samples' worth). Each problem's samples are committed as "
            "soon as its k are generated, whatever the chunk."
        },
    )
    batch_size: int = field(default=8, metadata={"help": "Generation batch size of the hf backend."})
    dtype: str = field(default="auto", metadata={"help": "Model dtype: auto, float32, bfloat16, float16."})
    tensor_parallel_size: int | None = field(
        default=None, metadata={"help": "vllm only: GPUs each model replica is split over (default 1)."}
    )
    data_parallel_size: int | None = field(
        default=None,
        metadata={
            "help": "vllm only: model replicas, each on its own GPU(s), run by lm-eval as Ray tasks (default 1)."
        },
    )
    gpu_memory_utilization: float | None = field(
        default=None,
        metadata={"help": "vllm only: share of each GPU's memory vLLM may use for weights and KV cache (default 0.9)."},
    )
    max_model_len: int | None = field(
        default=None,
        metadata={
            "help": "vllm only: the engine's context length (default: longest prompt + budget + 8, at most the "
            "model's context); must hold the longest prompt plus the budget."
        },
    )
    seed: int = field(
        default=1234,
        metadata={"help": "Base sampling seed (hf: seed + first doc id of each chunk; vllm: engine seed)."},
    )
    threads: int | None = field(
        default=None, metadata={"help": "torch CPU threads (1 is fastest for tiny models on small machines)."}
    )
    run: str | None = field(
        default=None, metadata={"help": "Training run the checkpoint belongs to (set by `walkrun watch`)."}
    )
    run_backend: str | None = field(
        default=None, metadata={"help": "That training run's backend: openrlhf or local (default: local)."}
    )
    stage: str | None = field(default=None, metadata={"help": STAGE_HELP})
    step: int | None = field(default=None, metadata={"help": "Training step of the checkpoint."})
    progress: bool = field(default=True, metadata={"help": "Show progress bars on stderr."})
    # Distributed evaluation (walkrun.evaluate.distributed) and the leases every evaluation takes.
    ray: str | None = field(
        default=None,
        metadata={
            "help": "Run each checkpoint x task evaluation as a Ray task: a cluster address (host:port, "
            "ray://host:port), 'auto' (the cluster this node belongs to) or 'local' (a Ray instance on this "
            "machine); unset: evaluate in this process."
        },
    )
    ray_gpus: float | None = field(
        default=None,
        metadata={"help": "GPUs per Ray evaluation (default: 1 when the cluster has GPUs, else 0)."},
    )
    ray_cpus: float = field(default=1.0, metadata={"help": "CPUs per Ray evaluation."})
    lease_seconds: float = field(
        default=120.0,
        metadata={
            "help": "An evaluation's claim in the DB lasts this long unless renewed (every third of it, while "
            "running); a dead worker's evaluation is taken over this long after its last renewal."
        },
    )

    def __post_init__(self):
        if isinstance(self.tasks, str):
            self.tasks = [t for t in self.tasks.split(",") if t.strip()]
        self.tasks = list(dict.fromkeys(t.strip() for t in self.tasks if t.strip()))  # order kept, repeats dropped
        if not self.tasks:
            raise WalkrunError("no tasks given; e.g. --tasks aime24,amc23,math500")
        if self.endpoint is not None:
            self._check_endpoint()
        elif self.tokenizer is not None:
            raise WalkrunError("--tokenizer applies to --endpoint evaluations only (a model folder has its own)")
        elif self.backend == "auto":
            self.backend = default_backend()
        if self.backend not in BACKENDS and not (self.endpoint and self.backend == ENDPOINT_BACKEND):
            raise WalkrunError(f"unknown backend {self.backend!r}; choose one of auto, {', '.join(BACKENDS)}")
        for name, low in (
            ("samples", 1),
            ("max_new_tokens", 1),
            ("limit", 1),
            ("chunk_size", 1),
            ("batch_size", 1),
            *((name, 1) for name in VLLM_ONLY if name != "gpu_memory_utilization"),
        ):
            v = getattr(self, name)
            if v is not None and v < low:
                raise WalkrunError(f"--{name.replace('_', '-')} must be >= {low}, got {v}")
        if self.ray_gpus is not None and self.ray_gpus < 0:
            raise WalkrunError(f"--ray-gpus must be >= 0, got {self.ray_gpus}")
        if self.ray_cpus < 0:
            raise WalkrunError(f"--ray-cpus must be >= 0, got {self.ray_cpus}")
        if self.lease_seconds < 1:
            raise WalkrunError(f"--lease-seconds must be >= 1, got {self.lease_seconds}")
        given = [f"--{n.replace('_', '-')}" for n in VLLM_ONLY if getattr(self, n) is not None]
        if given and self.backend != "vllm":
            verb = "applies" if len(given) == 1 else "apply"
            raise WalkrunError(
                f"{', '.join(given)} only {verb} to --backend vllm (this evaluation uses {self.backend})"
            )
        if self.gpu_memory_utilization is not None and not 0 < self.gpu_memory_utilization <= 1:
            raise WalkrunError(f"--gpu-memory-utilization must be in (0, 1], got {self.gpu_memory_utilization}")
        if self.temperature is not None and self.temperature < 0:
            raise WalkrunError(f"--temperature must be >= 0, got {self.temperature}")
        check_stage(self.stage, "--stage")
        if self.top_p is not None and not 0 < self.top_p <= 1:
            raise WalkrunError(f"--top-p must be in (0, 1], got {self.top_p}")

        protocols.expand(self.protocol)  # an unknown protocol fails here, before any work
        if self.prompt is not None:
            prompts.get(self.prompt)

    def _check_endpoint(self) -> None:
        if self.backend not in ("auto", ENDPOINT_BACKEND):
            raise WalkrunError(f"--endpoint evaluates a server; --backend {self.backend} does not apply")
        self.backend = ENDPOINT_BACKEND
        base_url(self.endpoint or "")  # a malformed URL fails here
        if not self.model:
            raise WalkrunError("--endpoint needs --model: the model name the server serves")
        if self.api not in APIS:
            raise WalkrunError(f"--api must be one of {', '.join(APIS)}, got {self.api!r}")
        if self.ray:
            raise WalkrunError("--endpoint evaluations run in this process (the server does the work); drop --ray")
        for name in ("concurrency", "max_retries"):
            if getattr(self, name) < 1:
                raise WalkrunError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(self, name)}")
        if self.request_timeout <= 0:
            raise WalkrunError(f"--request-timeout must be > 0, got {self.request_timeout}")
