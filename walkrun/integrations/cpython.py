"""CPython's multiprocessing: forkserver workers that do not re-run the caller's `__main__`.

multiprocessing prepares every child by importing the parent's main module again (from its
path or module name), which breaks when that module has no file (`python -` on stdin, some
notebook and embedding hosts) and re-runs a script's unguarded top-level code elsewhere. The
grader's workers need only `walkrun.grading`, so their start drops that step: the
preparation data that `multiprocessing.popen_forkserver.Popen._launch` gets from
`multiprocessing.spawn.get_preparation_data` loses its `init_main_from_path` /
`init_main_from_name` entries, for processes of this context only (a thread-local flag; other
users of multiprocessing in the process keep the standard preparation).

Written against the multiprocessing source of CPython 3.11 to 3.13 (those files are the same
there). Outside that range walkrun runs without it, and says so once: workers then start the
standard way, which works for any caller whose main module is a file with a `__main__` guard.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.context
import multiprocessing.popen_forkserver
import multiprocessing.spawn
import threading

from walkrun.integrations import patch
from walkrun.integrations.versions import PYTHON, Supported, require_attributes

SUPPORTED = Supported(
    "CPython",
    (PYTHON,),
    ">=3.11,<3.14",
    "walkrun's grader workers (multiprocessing start without __main__)",
    remedy="grader workers start the standard way instead (the caller's main module must be an importable file)",
)
_TAG = "without-main"
_launching = threading.local()


def _without_main(get_preparation_data):
    def preparation(name):
        data = get_preparation_data(name)
        if getattr(_launching, "active", False):
            data.pop("init_main_from_path", None)
            data.pop("init_main_from_name", None)
        return data

    return preparation


class _Popen(multiprocessing.popen_forkserver.Popen):
    def _launch(self, process_obj):
        # installed here, not at import: a process that never grades keeps multiprocessing untouched
        patch.replace([multiprocessing.spawn], "get_preparation_data", _without_main, _TAG, SUPPORTED)
        _launching.active = True
        try:
            super()._launch(process_obj)
        finally:
            _launching.active = False


class _Process(multiprocessing.context.ForkServerProcess):
    @staticmethod
    def _Popen(process_obj):
        return _Popen(process_obj)


class _Context(multiprocessing.context.ForkServerContext):
    Process = _Process


def forkserver_without_main() -> multiprocessing.context.ForkServerContext:
    """A forkserver context whose processes skip the main-module preparation; the standard
    forkserver context (said once) on a CPython this was not written against."""
    if not SUPPORTED.allows():
        return multiprocessing.get_context("forkserver")
    require_attributes(multiprocessing.popen_forkserver.Popen, ("_launch",), SUPPORTED)
    require_attributes(multiprocessing.context.ForkServerProcess, ("_Popen",), SUPPORTED)
    require_attributes(multiprocessing.spawn, ("get_preparation_data",), SUPPORTED)
    return _Context()
