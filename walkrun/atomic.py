"""Writing files and folders so a reader (a watcher, a web server, a resumed run) never sees half
of one: everything is written beside its destination and renamed into place."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any


def write_text(path: str | Path, text: str, mode: int | None = None) -> Path:
    """`path` holds `text` (and permission bits `mode`), replaced in one rename."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(text, encoding="utf-8")
    if mode is not None:
        tmp.chmod(mode)
    os.replace(tmp, path)
    return path


def replace_dir(new: str | Path, dest: str | Path) -> Path:
    """Move the finished folder `new` to `dest`; a folder already there is moved aside first and
    deleted afterwards, so `dest` is always either the old or the new folder."""
    new, dest = Path(new), Path(dest)
    old = None
    if dest.exists():
        old = dest.with_name(f".{dest.name}.old-{os.getpid()}")
        shutil.rmtree(old, ignore_errors=True)
        dest.rename(old)
    new.rename(dest)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    return dest


def temp_dir_for(dest: str | Path) -> Path:
    """An empty hidden folder beside `dest` to write it in."""
    dest = Path(dest)
    tmp = dest.parent / f".{dest.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    return tmp


def save_model(model: Any, tokenizer: Any, dest: str | Path) -> Path:
    """An HF model folder (weights, config, tokenizer) written whole to `dest`."""
    tmp = temp_dir_for(dest)
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return replace_dir(tmp, dest)
