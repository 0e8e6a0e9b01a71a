"""The Examples in tconv_lib's docstrings run, and print what they say."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import tconv_lib

MODULES = ["tconv_lib"] + [m.name for m in pkgutil.walk_packages(tconv_lib.__path__,
                                                                  "tconv_lib.")]
FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
# the public API documents itself with examples; these must never lose them
DOCUMENTED = ["tconv_lib", "tconv_lib.transpose", "tconv_lib.conv", "tconv_lib.methods.matrix",
              "tconv_lib.nn", "tconv_lib.shapes", "tconv_lib.gradients",
              "tconv_lib.conventions"]


def _examples(name: str) -> list[doctest.DocTest]:
    try:
        module = importlib.import_module(name)  # not getattr: tconv_lib.conv is also a function
    except ModuleNotFoundError as err:           # the Triton kernels, where Triton is missing
        if err.name != "triton":
            raise
        return []
    return [t for t in doctest.DocTestFinder().find(module) if t.examples]


WITH_EXAMPLES = [name for name in MODULES if _examples(name)]


@pytest.mark.parametrize("name", WITH_EXAMPLES)
def test_docstring_examples(name: str) -> None:
    runner = doctest.DocTestRunner(optionflags=FLAGS)
    for test in _examples(name):
        runner.run(test)
    result = runner.summarize(verbose=False)
    assert result.attempted > 0
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples failed in {name}"


def test_the_public_api_has_examples() -> None:
    assert set(DOCUMENTED) <= set(WITH_EXAMPLES)
    for name, obj in [("conv_transpose", tconv_lib.conv_transpose), ("conv", tconv_lib.conv),
                      ("conv_matrix", tconv_lib.conv_matrix)]:
        doc = obj.__doc__
        for section in ("Args:", "Returns:", "Raises:", "Examples:", "int or tuple",
                        "Default:"):
            assert section in doc, f"{name}'s docstring has no {section!r}"
