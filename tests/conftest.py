"""Tiny real models, loaded once per session; the real seed articles as the corpus."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import pytest  # noqa: E402

from rag import Pipeline, Settings, update  # noqa: E402
from rag.indexing.embed import load_embedder  # noqa: E402
from rag.llm.generate import LlamaCppGenerator  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
SEEDS = ROOT / "seeds"


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    """No test reads or writes the developer's index/ or RAG_* settings."""
    for key in list(os.environ):
        if key.startswith("RAG_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("RAG_INDEX_DIR", str(tmp_path / "index"))


@pytest.fixture(scope="session")
def embedder():
    return load_embedder("")


@pytest.fixture(scope="session")
def generator():
    return LlamaCppGenerator("", n_threads=os.cpu_count() or 2)


def installed_reader() -> Path | None:
    """The default reader's GGUF in models/, as `make models` (and so `make test`) puts it."""
    from rag.llm import models
    from rag.loader import DEFAULT_READER

    return models.installed(models.PACKAGED[DEFAULT_READER], ROOT / "models")


@pytest.fixture(scope="session")
def default_reader():
    """The shipped reader (Qwen2.5-Coder-1.5B-Instruct), loaded once: a real judge."""
    from rag.llm.reader import LlamaReader

    path = installed_reader()
    if path is None:
        pytest.skip("the default reader is not installed: `make models` (make test does)")
    return LlamaReader.load(str(path), n_threads=os.cpu_count() or 2)


@pytest.fixture(scope="session")
def seed_settings(tmp_path_factory, embedder):
    """An index of the seed articles, built once."""
    index_dir = tmp_path_factory.mktemp("seed-index")
    settings = Settings.load(env={}, index_dir=str(index_dir))
    update(settings, embedder, [str(SEEDS)])
    return settings


@pytest.fixture(scope="session")
def seed_index(seed_settings, embedder):
    from rag import load_index

    return load_index(seed_settings, embedder)


@pytest.fixture(scope="session")
def pipeline(seed_settings, seed_index, embedder, generator):
    return Pipeline(seed_settings, seed_index, embedder, generator)


@pytest.fixture()
def docs_copy(tmp_path):
    """A writable copy of the seed articles."""
    dst = tmp_path / "docs"
    shutil.copytree(SEEDS, dst)
    return dst


def file_text(source: str) -> str:
    with open(source, encoding="utf-8", newline="") as f:
        return f.read()
