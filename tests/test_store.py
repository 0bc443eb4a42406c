"""Sharing an index folder: readers while a writer saves, the advice a broken index gives, who
may read it, and what a failed `rag index` leaves behind."""

from __future__ import annotations

import subprocess
import sys

import pytest

from rag import cli as rag_cli
from rag.embed import CachedEmbedder

from .conftest import ROOT


@pytest.fixture()
def cached(embedder):
    return CachedEmbedder(embedder)


def _cli(capsys, *args: str) -> tuple[int, str, str]:
    code = rag_cli.main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


# -- a failed `rag index` ----------------------------------------------------------------
@pytest.mark.parametrize("problem", ["mistyped", "empty"])
def test_a_failed_rag_index_leaves_no_index_folder_or_lock_behind(
    capsys, tmp_path, monkeypatch, cached, problem
):
    monkeypatch.setattr("rag.embed.load_embedder", lambda model_dir="": cached)
    (tmp_path / "empty").mkdir()
    path = {"mistyped": tmp_path / "notse", "empty": tmp_path / "empty"}[problem]
    for index_dir in (tmp_path / "index", tmp_path / "new" / "deeper" / "index"):
        code, out, err = _cli(capsys, "index", "--index-dir", str(index_dir), str(path))
        assert code == 1 and err.count("\n") == 1 and err.startswith(f"error: {path}: "), err
        assert sorted(p.name for p in tmp_path.iterdir()) == ["empty"]
    # a folder that was there before stays, with what was in it
    (tmp_path / "index").mkdir()
    (tmp_path / "index" / "keep.txt").write_text("mine")
    code, out, err = _cli(capsys, "index", "--index-dir", str(tmp_path / "index"), str(path))
    assert code == 1 and {p.name for p in (tmp_path / "index").iterdir()} >= {"keep.txt"}


def test_import_rag_needs_no_posix_only_module():
    """`fcntl` exists only on POSIX; the writers' lock comes from filelock, which picks what
    the OS has. Hidden here to stand in for Windows."""
    code = "import sys; sys.modules['fcntl'] = None; import rag, rag.store, rag.indexer; print('ok')"
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0 and r.stdout == "ok\n", r.stderr
