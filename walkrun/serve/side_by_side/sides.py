"""The two columns of the side-by-side demo: where each side's answers come from (an OpenAI URL,
or a vLLM server started for a model folder or DB checkpoint), and swapping a model onto a side."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from walkrun.db.read_models import CheckpointInfo
from walkrun.db.records import list_checkpoints
from walkrun.serve.side_by_side.config import SideBySideConfig
from walkrun.serve.vllm_server import VLLMServerConfig, cores_for, start_server, start_servers
from walkrun.settings import WalkrunError

_HUB_ID = re.compile(r"^[\w.-]+/[\w.-]+$")


@dataclass
class Side:
    """One column: where its answers come from."""

    label: str
    source: str  # what the user gave
    url: str  # OpenAI base URL
    model: str | None = None  # served model name; None = first of /v1/models
    api_key: str | None = None
    server: Any = None  # VLLMServer the demo started, stopped on close
    checkpoint: CheckpointInfo | None = None  # the results DB's checkpoint it serves ({id, name, ...}), if known

    @property
    def title(self) -> str:
        """The column's heading: its label, then what it serves (the DB checkpoint's name when
        known), each once."""
        what = self.checkpoint["name"] if self.checkpoint else self.model or self.source
        return f"{self.label} · `{what}`" if what and what != self.label else self.label


def is_url(value: str) -> bool:
    return value.startswith(("http://", "https://"))


def base_url(value: str) -> str:
    """The OpenAI base URL: `http://host:port` gets vLLM's `/v1`."""
    from urllib.parse import urlparse

    value = value.rstrip("/")
    return value + "/v1" if urlparse(value).path in ("", "/") else value


def served_model(url: str, api_key: str | None = None, timeout: float = 5.0) -> str | None:
    """The first model id of `url`/models, or None when the endpoint does not answer (yet)."""
    import json
    import urllib.request

    req = urllib.request.Request(url + "/models", headers={"Authorization": f"Bearer {api_key or 'EMPTY'}"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            data = json.load(r).get("data") or []
        return data[0]["id"] if data else None
    except (OSError, ValueError, KeyError, IndexError):
        return None


def resolve_model(value: str, db: str | None = None) -> str:
    """A model folder or hub id for `value`: an existing folder, a checkpoint name in the DB, a hub id."""
    return resolve(value, db)[0]


def resolve(value: str, db: str | None = None) -> tuple[str, CheckpointInfo | None]:
    """(model folder or hub id, the DB's checkpoint record for it or None) for `value`: an existing
    folder, a checkpoint name, source or id in the results DB, or a hub id."""
    p = Path(value).expanduser()
    folder = str(p.resolve()) if p.is_dir() else None
    try:
        known = list_checkpoints(db)
    except WalkrunError:
        known = []  # no usable DB: only the other forms
    for c in known:
        if folder is not None and c["source"] == folder:
            return folder, c
        if folder is None and value in (c["name"], c["source"], str(c["id"])):
            return c["source"], c
    if folder is not None:
        return folder, None
    if _HUB_ID.match(value) and not value.startswith((".", "/")):
        return value, None
    raise WalkrunError(
        f"demo: {value!r} is not a URL (http://host:port/v1), an existing model folder, "
        "or a checkpoint name in the results DB (`walkrun serve checkpoints` lists them)"
    )


def served_name(model: str, checkpoint: CheckpointInfo | None) -> str:
    """The name a server the demo starts serves `model` under: the checkpoint's name in the DB,
    else the folder's name (a hub id as it is)."""
    if checkpoint is not None:
        return checkpoint["name"]
    p = Path(model)
    return p.name if p.is_absolute() else model


def make_sides(cfg: SideBySideConfig) -> list[Side]:
    """Sides for the config, starting a vLLM server for each side that names a model."""
    values = [cfg.a, cfg.b]
    sides: list[Side | None] = [None, None]
    to_start: list[tuple[int, str, CheckpointInfo | None]] = []
    for i, value in enumerate(values):
        if is_url(value):
            sides[i] = Side(cfg.labels[i], value, base_url(value), api_key=cfg.api_key)
        else:
            to_start.append((i, *resolve(value, cfg.db)))
    if to_start:
        cores = cores_for(len(to_start))
        configs = [
            VLLMServerConfig(
                model=model,
                name=served_name(model, ckpt),
                cpu_cores=core,
                max_model_len=cfg.max_model_len,
                reasoning_parser=cfg.reasoning_parser,
                startup_timeout=cfg.startup_timeout,
            )
            for (i, model, ckpt), core in zip(to_start, cores)
        ]
        for (i, model, ckpt), server in zip(to_start, start_servers(configs)):
            sides[i] = Side(
                cfg.labels[i],
                model,
                server.url,
                model=server.name,
                api_key=server.api_key,
                server=server,
                checkpoint=ckpt,
            )
    for side in sides:  # after any start-up, so a URL server started alongside has had time
        if side is not None and side.model is None:
            side.model = served_model(side.url, side.api_key)
    return [s for s in sides if s is not None]


def swap_side(sides: list[Side], which: int, source: str, cfg: SideBySideConfig, start=None) -> Side:
    """Serve checkpoint `source` on side `which` (0 left, 1 right): start its server, put it in
    `sides`, then stop the server it replaces. A server that fails to start leaves the side as it was."""
    if start is None:
        start = start_server
    label = cfg.labels[which]
    try:
        source, ckpt = resolve(source, cfg.db)
    except WalkrunError:
        ckpt = None  # the server's own start-up says what is wrong with it
    server = start(
        source,
        name=served_name(source, ckpt),
        cpu_cores=cores_for(2)[which],
        max_model_len=cfg.max_model_len,
        reasoning_parser=cfg.reasoning_parser,
        startup_timeout=cfg.startup_timeout,
    )
    old = sides[which]
    sides[which] = Side(
        label, source, server.url, model=server.name, api_key=server.api_key, server=server, checkpoint=ckpt
    )
    if old.server is not None:
        old.server.stop()
    return sides[which]
