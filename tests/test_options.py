"""walkrun.options: one dataclass gives a command its options, `--set`, `--config` YAML and `--explain`."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
import typer
from typer.testing import CliRunner

from walkrun import options
from walkrun.settings import WalkrunError


@dataclass
class Toy:
    name: str = field(metadata={"help": "what to call it"})
    steps: int = field(default=10, metadata={"help": "how many steps"})
    rate: float = field(default=0.5, metadata={"help": "a rate"})
    fast: bool = field(default=False, metadata={"help": "go fast"})
    tags: list[str] = field(default_factory=lambda: ["a"], metadata={"help": "labels"})
    limit: int | None = field(default=None, metadata={"help": "optional cap"})


WIDE = {"rich_markup_mode": None, "context_settings": {"terminal_width": 200, "max_content_width": 200}}


def _app(**kw) -> typer.Typer:
    app = typer.Typer(**WIDE)
    seen: dict = {}

    @app.command()
    @options.command(Toy, **kw)
    def run(cfg: Toy, extra: int = typer.Option(0, "--extra", help="not a field")) -> None:
        seen["cfg"], seen["extra"] = cfg, extra

    app.seen = seen  # type: ignore[attr-defined]
    return app


@pytest.mark.parametrize(
    "value, tp, expected",
    [
        ("yes", bool, True),
        ("off", bool, False),
        ("1e3", int, 1000),
        ("7", int, 7),
        (3, float, 3.0),
        ("a, b c", list[str], ["a", "b", "c"]),
        ("[0, 1.01]", list[float], [0.0, 1.01]),
        ("none", int | None, None),
        ("5", int | None, 5),
    ],
)
def test_coerce_turns_text_and_yaml_values_into_the_field_type(value, tp, expected):
    assert options.coerce("x", value, tp) == expected


@pytest.mark.parametrize("value, tp", [("maybe", bool), ("1.5", int), (True, int), ("x", float), ({"a": 1}, str)])
def test_coerce_refuses_what_the_type_cannot_hold(value, tp):
    with pytest.raises(WalkrunError, match=r"^x: cannot use"):
        options.coerce("x", value, tp)


def test_options_set_and_config_are_layered_over_the_defaults(tmp_path):
    app = _app()
    r = CliRunner().invoke(app, ["--name", "n"], catch_exceptions=False)
    assert r.exit_code == 0 and app.seen["cfg"] == Toy(name="n")
    yaml_file = tmp_path / "toy.yaml"
    yaml_file.write_text("name: from-file\nsteps: 3\nrate: 0.1\ntags: [x, y]\n")
    args = ["--config", str(yaml_file), "--set", "steps=4", "--set", "fast=yes", "--rate", "0.9", "--extra", "2"]
    r = CliRunner().invoke(app, args, catch_exceptions=False)
    assert r.exit_code == 0
    # file < --set < options; the command's own parameter arrives as usual
    assert app.seen["cfg"] == Toy(name="from-file", steps=4, rate=0.9, fast=True, tags=["x", "y"])
    assert app.seen["extra"] == 2


def test_help_and_explain_come_from_the_field_metadata():
    app = _app()
    r = CliRunner().invoke(app, ["--help"])
    for text in ("--steps", "how many steps", "[default: 10]", "--fast", "--no-fast", "--tags", "--set", "--config"):
        assert text in r.output
    app.seen.clear()
    r = CliRunner().invoke(app, ["--name", "n", "--tags", "p,q", "--explain"], catch_exceptions=False)
    assert r.exit_code == 0 and "cfg" not in app.seen  # --explain does not run the command
    assert 'tags = ["p", "q"]\n    labels' in r.output and "steps = 10\n    how many steps" in r.output


def test_a_list_option_is_repeatable_and_comma_separated():
    app = _app()
    CliRunner().invoke(app, ["--name", "n", "--tags", "p,q", "--tags", "r"], catch_exceptions=False)
    assert app.seen["cfg"].tags == ["p", "q", "r"]
    CliRunner().invoke(app, ["--name", "n", "--tags", "[x y]"], catch_exceptions=False)  # one item: YAML as in --set
    assert app.seen["cfg"].tags == ["x y"]
    CliRunner().invoke(app, ["--name", "n"], catch_exceptions=False)
    assert app.seen["cfg"].tags == ["a"]


def test_bad_input_is_one_clear_error():
    app = _app()
    with pytest.raises(WalkrunError, match=r"unknown field 'step' \(did you mean steps"):
        CliRunner().invoke(app, ["--name", "n", "--set", "step=3"], catch_exceptions=False)
    with pytest.raises(WalkrunError, match="missing --name"):
        CliRunner().invoke(app, [], catch_exceptions=False)
    with pytest.raises(WalkrunError, match="expected key=value"):
        CliRunner().invoke(app, ["--name", "n", "--set", "steps"], catch_exceptions=False)


def test_excluded_fields_are_neither_options_nor_settable():
    app = _app(exclude=("limit",), fixed={"limit": 7})
    assert "--limit" not in CliRunner().invoke(app, ["--help"]).output
    CliRunner().invoke(app, ["--name", "n"], catch_exceptions=False)
    assert app.seen["cfg"].limit == 7
    with pytest.raises(WalkrunError, match="unknown field 'limit'"):
        CliRunner().invoke(app, ["--name", "n", "--set", "limit=3"], catch_exceptions=False)


def test_preset_commands_receive_the_typed_overrides():
    app = typer.Typer(**WIDE)
    seen = []

    @app.command()
    @options.command(Toy, preset=True)
    def run(overrides: dict, explain: bool, preset: str = typer.Argument(...)) -> None:
        seen.append((preset, overrides, explain))

    r = CliRunner().invoke(app, ["p1", "--set", "steps=2", "--steps", "5", "--set", "limit=none", "--explain"])
    assert r.exit_code == 0, r.output
    assert seen == [("p1", {"steps": 5, "limit": None}, True)]
    assert "--config" not in CliRunner().invoke(app, ["--help"]).output
