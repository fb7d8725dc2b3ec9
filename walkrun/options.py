"""Config dataclasses as the one source of every option: a field's type, default and
`metadata={"help": ...}` give its CLI flag, its `--set key=value` parsing, its YAML key and its
`--explain` line.

    @options.command(EvalConfig, flags={"samples": ("--samples", "-k")})
    def eval_command(cfg: EvalConfig) -> None: ...

`command` turns the dataclass's fields into Typer options (plus `--set`, `--explain`, `--config`
and the function's own parameters, declared as usual) and calls the function with the built
config; with `preset=True` it passes the typed overrides instead, for a command that layers them
over a preset.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import inspect
import json
import types
import typing
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import yaml

from walkrun.settings import WalkrunError, safe_url

T = TypeVar("T")
NONE_WORDS = ("none", "null", "")
TRUE_WORDS = ("1", "true", "yes", "on")
FALSE_WORDS = ("0", "false", "no", "off")
DB_HELP = "Results DB URL (default: WALKRUN_DB, else SQLite in WALKRUN_HOME)."
DB_FLAGS = {"db": ("--db", "--url")}  # the flags of a `db` field in the commands that read the results DB


def opt(default: Any = dataclasses.MISSING, help: str = "", **meta: Any) -> Any:
    """A dataclass field with its help (and any other metadata); list/dict defaults are copied."""
    if isinstance(default, (list, dict)):
        factory: Callable[[], Any] = functools.partial(type(default), default)
        return dataclasses.field(default_factory=factory, metadata={"help": help, **meta})
    return dataclasses.field(default=default, metadata={"help": help, **meta})


def field_types(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _optional_inner(tp: Any) -> tuple[bool, Any]:
    """(is Optional, the type inside)."""
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        inner = [a for a in typing.get_args(tp) if a is not type(None)]
        return len(inner) < len(typing.get_args(tp)), inner[0]
    return False, tp


def coerce(name: str, value: Any, tp: Any) -> Any:
    """A YAML, `--set` or CLI value as the field's type, or a WalkrunError saying what is expected."""
    optional, tp = _optional_inner(tp)
    if optional and (value is None or (isinstance(value, str) and value.strip().lower() in NONE_WORDS)):
        return None
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    try:
        if tp is bool:
            if isinstance(value, bool):
                return value
            word = str(value).strip().lower()
            if word in TRUE_WORDS or word in FALSE_WORDS:
                return word in TRUE_WORDS
        elif tp is int:
            if isinstance(value, str):
                value = float(value) if any(c in value.lower() for c in ".e") else int(value)
            if not isinstance(value, bool) and isinstance(value, (int, float)) and float(value).is_integer():
                return int(value)
        elif tp is float:
            if not isinstance(value, bool):
                return float(value)
        elif tp in (str, Path):
            if value is not None and not isinstance(value, (dict, list)):
                return tp(value)
        elif origin is list:
            if isinstance(value, str):
                text = value.strip()
                value = yaml.safe_load(text) if text.startswith("[") else [v for v in text.replace(",", " ").split()]
            if isinstance(value, (list, tuple)):
                return [coerce(name, v, args[0]) for v in value]
        elif origin is dict:
            if isinstance(value, str):
                value = yaml.safe_load(value) if value.strip() else {}
            if isinstance(value, dict):
                return {str(k): coerce(f"{name}.{k}", v, args[1]) for k, v in value.items()}
    except (TypeError, ValueError, yaml.YAMLError):
        pass
    shown = getattr(tp, "__name__", str(tp))
    raise WalkrunError(f"{name}: cannot use {value!r} as {shown}")


def typed_values(cls: type, data: Mapping[str, Any], where: str, exclude: Iterable[str] = ()) -> dict[str, Any]:
    """`data`'s values as the types of `cls`'s fields; an unknown key is a WalkrunError naming `where`."""
    hints = field_types(cls)
    skip = set(exclude)
    out = {}
    for key, value in data.items():
        if key not in hints or key in skip:
            known = [k for k in hints if k not in skip]
            close = difflib.get_close_matches(key, known, n=3)
            hint = f" (did you mean {', '.join(close)}?)" if close else f"; known: {', '.join(known)}"
            raise WalkrunError(f"{where}: unknown field {key!r}{hint}")
        out[key] = coerce(key, value, hints[key])
    return out


def parse_sets(cls: type, sets: Iterable[str] | None, exclude: Iterable[str] = ()) -> dict[str, Any]:
    """`["key=value", ...]` -> {key: typed value}. For a dict field, `key.sub=value` sets one
    entry (merged over the preset's by `build` and `merge_layer`)."""
    pairs: dict[str, Any] = {}
    hints = field_types(cls)
    for item in sets or []:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise WalkrunError(f"--set {item!r}: expected key=value, e.g. --set seed=1")
        head, dot, sub = key.partition(".")
        if dot and head in hints and typing.get_origin(_optional_inner(hints[head])[1]) is dict:
            if not sub:
                raise WalkrunError(f"--set {item!r}: expected {head}.NAME=value")
            entry = pairs.setdefault(head, {})
            if not isinstance(entry, dict):
                raise WalkrunError(f"--set {item!r}: {head} is also set as a whole")
            entry[sub] = value
        else:
            pairs[key] = value
    return typed_values(cls, pairs, "--set", exclude)


def merge_layer(values: dict[str, Any], layer: Mapping[str, Any]) -> None:
    """Apply one layer of typed values over `values`: a dict value updates the dict it lands on
    (so `--set params.alpha=0.1` keeps the preset's other entries), anything else replaces."""
    for key, value in layer.items():
        if isinstance(value, dict) and isinstance(values.get(key), dict):
            values[key] = {**values[key], **value}
        else:
            values[key] = value


def read_yaml(path: str | Path) -> dict[str, Any]:
    """A YAML file holding a mapping (empty file: {})."""
    p = Path(path)
    if not p.is_file():
        raise WalkrunError(f"config file {p} does not exist")
    try:
        data = yaml.safe_load(p.read_text()) or {}
    except yaml.YAMLError as e:
        raise WalkrunError(f"{p}: not valid YAML: {str(e).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise WalkrunError(f"{p} must be a YAML mapping of field: value")
    return data


def build(cls: type[T], *layers: Mapping[str, Any], where: str = "config") -> T:
    """`cls(**values)` with the layers' values (later ones win), each coerced to its field's type."""
    values: dict[str, Any] = {}
    for layer in layers:
        merge_layer(values, typed_values(cls, layer, where))
    return cls(**values)


def explain(config: Any, note: Callable[[str], str] | None = None, exclude: Iterable[str] = ()) -> str:
    """Every field of a config (instance, or class for its defaults): `name = value  [note]`, then its help."""
    skip = set(exclude)
    lines = []
    for f in dataclasses.fields(config):
        if f.name in skip:
            continue
        if isinstance(config, type):
            value = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
            value = None if value is dataclasses.MISSING else value
        else:
            value = getattr(config, f.name)
        tail = f"  [{note(f.name)}]" if note else ""
        shown = json.dumps(value, default=str)
        # keys and DB passwords stay off the terminal (and out of any log it is piped into)
        shown = '"***"' if value and f.metadata.get("secret") else safe_url(shown)
        lines.append(f"{f.name} = {shown}{tail}\n    {f.metadata.get('help', '')}")
    return "\n".join(lines)


# ---------------------------------------------------------------- Typer commands from dataclasses


def _cli_type(tp: Any) -> Any:
    """The type Typer parses: a list option is repeatable text, each item comma- or space-separated
    (`--tags a,b --tags c`); all go through `coerce`."""
    _, inner = _optional_inner(tp)
    if inner in (bool, int, float, str, Path):
        return inner
    if typing.get_origin(inner) is list:
        return list[str]
    return str


def _from_cli(value: Any) -> Any:
    """A repeatable option's items as one text for `coerce` (a lone item as given: it may be YAML)."""
    if isinstance(value, (list, tuple)):
        return None if not value else value[0] if len(value) == 1 else ",".join(value)
    return value


def _shown_default(value: Any) -> Any:
    return ",".join(map(str, value)) if isinstance(value, list) else value


SET_HELP = "Set a field, KEY=VALUE (repeatable), e.g. --set seed=1; `--explain` lists the fields."
EXPLAIN_HELP = "List every field with its value and help, then exit."
CONFIG_HELP = "YAML file of field: value pairs (--set and the options override it)."
_SET, _EXPLAIN, _CONFIG = "walkrun_set", "walkrun_explain", "walkrun_config"


def _parameters(
    cls: type,
    exclude: set[str],
    flags: Mapping[str, tuple[str, ...]],
    arguments: Iterable[str],
    show_defaults: bool,
) -> list[inspect.Parameter]:
    """One Typer parameter per field; options default to None (= not given on the command line)."""
    import typer  # here, not at the top: configs are also read where only the package is shipped (Ray jobs)

    hints = field_types(cls)
    args = set(arguments)
    params = []
    for f in dataclasses.fields(cls):
        if f.name in exclude or typing.get_origin(_optional_inner(hints[f.name])[1]) is dict:
            continue
        cli_tp = _cli_type(hints[f.name])
        help_ = f.metadata.get("help", "")
        if f.default is not dataclasses.MISSING:
            default: Any = f.default
        elif f.default_factory is not dataclasses.MISSING:
            default = _shown_default(f.default_factory())
        else:
            default = ...
        if f.name in args:
            cli_tp = str if cli_tp == list[str] else cli_tp
            info: Any = typer.Argument(default, help=help_)
            annotation = cli_tp if default is ... else cli_tp | None
        else:
            flag = f.name.replace("_", "-")
            decls = flags.get(f.name) or ((f"--{flag}/--no-{flag}",) if cli_tp is bool else (f"--{flag}",))
            shown = f" [default: {_shown_default(default)}]" if show_defaults and default not in (None, ..., "") else ""
            metavar = "<str,...>" if cli_tp == list[str] else None
            info = typer.Option(None, *decls, help=help_ + shown, metavar=metavar)
            annotation = cli_tp | None
        params.append(inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=info, annotation=annotation))
    return params


def _common(preset: bool) -> list[inspect.Parameter]:
    import typer

    kw = inspect.Parameter.KEYWORD_ONLY
    params = [
        inspect.Parameter(
            _SET,
            kw,
            default=typer.Option(None, "--set", help=SET_HELP, metavar="KEY=VALUE"),
            annotation=list[str] | None,
        ),
        inspect.Parameter(_EXPLAIN, kw, default=typer.Option(False, "--explain", help=EXPLAIN_HELP), annotation=bool),
    ]
    if not preset:
        params.append(
            inspect.Parameter(
                _CONFIG,
                kw,
                default=typer.Option(None, "--config", help=CONFIG_HELP, metavar="FILE"),
                annotation=Path | None,
            )
        )
    return params


def _build_checked(cls: Any, layers: list[Mapping[str, Any]], where: str) -> Any:
    values: dict[str, Any] = {}
    for layer in layers:
        merge_layer(values, layer)
    missing = [
        f.name
        for f in dataclasses.fields(cls)
        if f.init
        and f.default is dataclasses.MISSING
        and f.default_factory is dataclasses.MISSING
        and f.name not in values
    ]
    if missing:
        shown = ", ".join("--" + m.replace("_", "-") for m in missing)
        raise WalkrunError(f"{where}: missing {shown}")
    return cls(**values)


def command(
    cls: type,
    *,
    exclude: Iterable[str] = (),
    flags: Mapping[str, tuple[str, ...]] | None = None,
    arguments: Iterable[str] = (),
    preset: bool = False,
    fixed: Mapping[str, Any] | None = None,
    show_defaults: bool = True,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorate a Typer command whose options are the fields of the dataclass `cls`.

    Every field (minus `exclude`, and dict fields, which only YAML / `--set` can give) becomes an
    option `--field-name` (or the names in `flags`), or a positional argument if listed in
    `arguments`; its help is the field's help. Every command also gets `--set KEY=VALUE` and
    `--explain`. Values are layered, later ones winning: the dataclass defaults, `fixed` (values
    of excluded fields the command sets itself), a `--config` YAML file, `--set`, the options.
    The function's other parameters are ordinary Typer parameters; its first one receives the
    built `cls` (`--explain` prints it and exits without calling the function).

    With `preset=True` the command starts from a preset instead of the defaults: there is no
    `--config`, and the function is called as `func(overrides, explain, **params)` with the typed
    `--set` values and options (`--set` first, options on top) to apply over its preset.
    `show_defaults=False` keeps the dataclass defaults out of the help where a preset supplies
    the real ones.
    """
    skip, flag_map, base = set(exclude), dict(flags or {}), dict(fixed or {})

    def decorate(func: Callable[..., Any]) -> Callable[..., Any]:
        own = list(inspect.signature(func).parameters.values())[2 if preset else 1 :]
        own_hints = typing.get_type_hints(func)
        own = [p.replace(annotation=own_hints.get(p.name, p.annotation)) for p in own]
        generated = _parameters(cls, skip | {p.name for p in own}, flag_map, arguments, show_defaults)
        names = {p.name for p in generated}
        hints = field_types(cls)

        @functools.wraps(func)
        def wrapper(**kwargs: Any) -> Any:
            values = {n: kwargs.pop(n) for n in names}
            sets, explain_only = kwargs.pop(_SET), kwargs.pop(_EXPLAIN)
            config_file = None if preset else kwargs.pop(_CONFIG)
            given = {k: coerce(k, _from_cli(v), hints[k]) for k, v in values.items() if _from_cli(v) is not None}
            overrides = {**parse_sets(cls, sets, exclude=skip), **given}
            if preset:
                return func(overrides, explain_only, **kwargs)
            from_file = typed_values(cls, read_yaml(config_file), str(config_file), skip) if config_file else {}
            cfg = _build_checked(cls, [base, from_file, overrides], "options")
            if explain_only:
                print(explain(cfg, exclude=skip))
                return None
            return func(cfg, **kwargs)

        positional = [p for p in own if _is_argument(p)]
        rest = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in own if p not in positional]
        params = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in positional]
        params += [p for p in generated if p.name in set(arguments)]
        params += [p for p in generated if p.name not in set(arguments)] + rest + _common(preset)
        wrapper.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
        wrapper.__annotations__ = {p.name: p.annotation for p in params}
        del wrapper.__wrapped__  # Typer must read the generated signature, not the function's
        return wrapper

    return decorate


def _is_argument(p: inspect.Parameter) -> bool:
    import typer

    return isinstance(p.default, typer.models.ArgumentInfo)
