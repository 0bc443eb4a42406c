"""The examples in rag's docstrings (and the test helpers') are run, so a reader can trust
them. None loads a model."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import rag

# __main__ runs the CLI when imported
MODULES = (
    ["rag"]
    + [m.name for m in pkgutil.walk_packages(rag.__path__, "rag.") if m.name != "rag.__main__"]
    + ["tests.scripted"]
)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_hold(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS, report=False)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples in {name} fail"


def test_the_examples_are_found():
    """A module that moves or a runner that finds nothing would pass the test above vacuously."""
    found = {
        name: doctest.testmod(importlib.import_module(name), report=False).attempted
        for name in (
            "rag.answering.query",
            "rag.reading.sentences",
            "rag.reading.terms",
            "rag.settings",
        )
    }
    assert all(found.values()), found
