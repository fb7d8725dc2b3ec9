"""`walkrun.integrations.patch`: one wrapper per tag, every holder of the function replaced, the
original restored, and a function that is gone refused instead of silently never wrapped."""

from __future__ import annotations

import types

import pytest

from walkrun.integrations import patch
from walkrun.integrations.versions import ChangedInternals, Supported

DEP = Supported("dep", ("dep",), "==1.0", "a test adapter")


def holders():
    home = types.ModuleType("dep.home")

    def f(x):
        return x + 1

    home.f = f
    importer = types.ModuleType("dep.importer")
    importer.f = f  # `from dep.home import f`
    other = types.ModuleType("dep.other")
    other.f = len  # a different function of the same name
    return home, importer, other


def doubling(original):
    def wrapper(x):
        return 2 * original(x)

    return wrapper


def test_every_holder_of_the_function_gets_one_wrapper():
    home, importer, other = holders()
    patch.replace([home, importer, other], "f", doubling, "double", DEP)
    assert home.f(1) == importer.f(1) == 4
    assert home.f is importer.f and patch.tag_of(home.f) == "double"
    assert other.f is len  # not the same function: left alone


def test_installing_again_is_a_no_op_and_another_tag_rewraps_the_original():
    home, importer, _ = holders()
    first = patch.replace([home, importer], "f", doubling, "double", DEP)
    assert patch.replace([home, importer], "f", doubling, "double", DEP) is first
    assert home.f(1) == 4  # not doubled twice
    patch.replace([home, importer], "f", lambda orig: lambda x: orig(x) + 100, "plus", DEP)
    assert home.f(1) == importer.f(1) == 102
    assert patch.tag_of(home.f) == "plus"


def test_restore_puts_the_original_back_everywhere():
    home, importer, _ = holders()
    plain = home.f
    patch.replace([home, importer], "f", doubling, "double", DEP)
    patch.restore([home, importer], "f")
    assert home.f is plain and importer.f is plain


def test_a_staticmethod_stays_static():
    class Engine:
        @staticmethod
        def run(x):
            return x

    patch.replace([Engine], "run", doubling, "double", DEP)
    assert Engine.run(3) == 6 and Engine().run(3) == 6
    patch.restore([Engine], "run")
    assert Engine.run(3) == 3


def test_a_function_the_dependency_no_longer_has_is_refused():
    home, _, _ = holders()
    del home.f
    with pytest.raises(ChangedInternals, match=r"a test adapter: dep.home has no f in this dep; .* dep ==1\.0"):
        patch.replace([home], "f", doubling, "double", DEP)
