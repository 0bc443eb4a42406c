"""The engine's layout (STYLE 19): rag/ is grouped by stage, and imports run one way.

    reading  <-  indexing  <-  answering  ->  llm (through its interfaces)  ->  reading.terms

Each sub-package may import the shared vocabulary (rag.types, rag.errors, rag.settings); only
the assembly (rag.loader, rag.cli, rag/__init__) imports across every stage. Nothing in rag/
imports the benchmark, the UI or gradio.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

RAG = Path(__file__).resolve().parent.parent / "rag"
VOCABULARY = {"rag.types", "rag.errors", "rag.settings"}
ALLOWED = {
    "reading": {"rag.reading"},
    "indexing": {"rag.reading", "rag.indexing"},
    "llm": {"rag.llm", "rag.reading.terms"},
    # models through their narrow doors: the Generator and Reader interfaces, never a backend
    "answering": {
        "rag.answering",
        "rag.indexing",
        "rag.reading",
        "rag.llm.generate",
        "rag.llm.reader",
    },
}
STAGES = sorted(ALLOWED)


def imported(path: Path) -> set[str]:
    """The absolute names of the modules `path` imports (relative imports resolved)."""
    package = ".".join(path.relative_to(RAG.parent).with_suffix("").parts[:-1])
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            out.add(mod)
            if not node.module or node.level and not node.module:
                out |= {f"{mod}.{a.name}" for a in node.names}
    return out


def _within(name: str, prefixes: set[str]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def test_rag_is_grouped_by_stage_each_with_its_docstring():
    for stage in STAGES:
        init = RAG / stage / "__init__.py"
        assert init.is_file(), stage
        doc = ast.get_docstring(ast.parse(init.read_text(encoding="utf-8")))
        assert doc and "May import:" in doc, f"rag/{stage}/__init__.py says what it may import"


@pytest.mark.parametrize("stage", STAGES)
def test_imports_run_one_way(stage):
    wrong = []
    for path in sorted((RAG / stage).glob("*.py")):
        for name in imported(path):
            if (
                name.startswith("rag")
                and name != "rag"
                and not _within(name, ALLOWED[stage] | VOCABULARY)
            ):
                wrong.append(f"{path.relative_to(RAG.parent)} imports {name}")
    assert not wrong, "\n".join(wrong)


def test_nothing_in_rag_imports_the_benchmark_or_the_ui():
    wrong = [
        f"{p.relative_to(RAG.parent)} imports {n}"
        for p in sorted(RAG.rglob("*.py"))
        for n in imported(p)
        if n.split(".")[0] in ("bench", "ui", "gradio")
    ]
    assert not wrong, "\n".join(wrong)


def test_the_vocabulary_imports_no_stage():
    for name in ("types", "errors", "settings"):
        assert not {
            n for n in imported(RAG / f"{name}.py") if _within(n, {f"rag.{s}" for s in STAGES})
        }, name
