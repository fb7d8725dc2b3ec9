"""CPU-ONLY TEST AID: run OpenRLHF 0.11.2's real argument parser and post-parse checks on argv lists.

    PYTHONPATH=tests/train/cpu_shims python tests/train/cpu_shims/validate_openrlhf_args.py IN.json OUT.json

IN.json is a list of argv lists (the flags after `python3 -m openrlhf.cli.train_ppo_ray`).
`openrlhf.cli.train_ppo_ray` builds its parser under `if __name__ == "__main__"`, so the
module is run as __main__ with `ray.is_initialized` replaced by a function that raises:
the first thing `train(args)` does is call it, so everything before Ray would start (argparse,
hierarchize, every assert) runs for real and nothing after it does. OUT.json gets, per argv,
{"ok": bool, "error": str|None, "args": the parsed nested namespace as a dict}.
"""

import contextlib
import io
import json
import runpy
import sys
import types


class _ReachedTrain(Exception):
    pass


def _capture_and_stop(*args, **kwargs):
    frame = sys._getframe(1)  # train(args)
    raise _ReachedTrain(frame.f_locals.get("args"))


def _plain(ns):
    if isinstance(ns, types.SimpleNamespace):
        return {k: _plain(v) for k, v in vars(ns).items()}
    if isinstance(ns, (list, tuple)):
        return [_plain(v) for v in ns]
    if isinstance(ns, (str, int, float, bool)) or ns is None:
        return ns
    return repr(ns)


def validate(argv):
    import ray

    original = ray.is_initialized
    ray.is_initialized = _capture_and_stop
    old_argv = sys.argv
    sys.argv = ["train_ppo_ray"] + list(argv)
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            runpy.run_module("openrlhf.cli.train_ppo_ray", run_name="__main__", alter_sys=False)
        return {"ok": False, "error": "train() was never reached", "args": None}
    except _ReachedTrain as stop:
        return {"ok": True, "error": None, "args": _plain(stop.args[0])}
    except SystemExit as e:  # argparse: unrecognized/invalid arguments
        last = (err.getvalue().strip().splitlines() or [""])[-1]
        return {"ok": False, "error": f"argparse exit {e.code}: {last}", "args": None}
    except AssertionError as e:
        return {"ok": False, "error": f"AssertionError: {e}", "args": None}
    finally:
        ray.is_initialized = original
        sys.argv = old_argv


def main():
    argvs = json.load(open(sys.argv[1]))
    json.dump([validate(a) for a in argvs], open(sys.argv[2], "w"))


if __name__ == "__main__":
    main()
