"""The settings of one evaluation (`walkrun eval`, and each checkpoint of `walkrun watch`)."""

from __future__ import annotations

from dataclasses import dataclass, field

from walkrun.options import DB_HELP
from walkrun.settings import WalkrunError
from walkrun.stages import STAGE_HELP, check_stage

DEFAULT_TASKS = ("aime24", "amc23", "math500")
BACKENDS = ("hf", "vllm")


@dataclass
class EvalConfig:
    model: str = field(metadata={"help": "Checkpoint: a local HF-format folder or a hub model id."})
    protocol: str = field(
        default="default",
        metadata={
            "help": "Evaluation protocol (walkrun/evaluate/protocols.yaml: default, greedy, conciser, r1, "
            "fatemi-temperature sweep); the flags below override it into a derived protocol."
        },
    )
    tasks: list[str] = field(
        default_factory=lambda: list(DEFAULT_TASKS),
        metadata={"help": "Task names (aime24, amc23, math500, aime25, minerva, olympiadbench, ...)."},
    )
    backend: str = field(default="hf", metadata={"help": "lm-eval backend: hf (transformers) or vllm."})
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
    limit: int | None = field(default=None, metadata={"help": "Only the first N problems of each task."})
    name: str | None = field(default=None, metadata={"help": "Display name of the checkpoint in the DB."})
    db: str | None = field(default=None, metadata={"help": DB_HELP})
    data: str | None = field(
        default=None, metadata={"help": "Benchmark data folder (default: WALKRUN_DATA; unset: the hub)."}
    )
    chunk_size: int = field(
        default=8, metadata={"help": "Problems per lm-eval call; each chunk is committed before the next."}
    )
    batch_size: int = field(default=8, metadata={"help": "Generation batch size of the hf backend."})
    dtype: str = field(default="auto", metadata={"help": "Model dtype: auto, float32, bfloat16, float16."})
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
        if self.backend not in BACKENDS:
            raise WalkrunError(f"unknown backend {self.backend!r}; choose one of {', '.join(BACKENDS)}")
        for name, low in (("samples", 1), ("max_new_tokens", 1), ("limit", 1), ("chunk_size", 1), ("batch_size", 1)):
            v = getattr(self, name)
            if v is not None and v < low:
                raise WalkrunError(f"--{name.replace('_', '-')} must be >= {low}, got {v}")
        if self.ray_gpus is not None and self.ray_gpus < 0:
            raise WalkrunError(f"--ray-gpus must be >= 0, got {self.ray_gpus}")
        if self.ray_cpus < 0:
            raise WalkrunError(f"--ray-cpus must be >= 0, got {self.ray_cpus}")
        if self.lease_seconds < 1:
            raise WalkrunError(f"--lease-seconds must be >= 1, got {self.lease_seconds}")
        if self.temperature is not None and self.temperature < 0:
            raise WalkrunError(f"--temperature must be >= 0, got {self.temperature}")
        check_stage(self.stage, "--stage")
        if self.top_p is not None and not 0 < self.top_p <= 1:
            raise WalkrunError(f"--top-p must be in (0, 1], got {self.top_p}")
        from walkrun.evaluate import protocols

        protocols.expand(self.protocol)  # an unknown protocol fails here, before any work
