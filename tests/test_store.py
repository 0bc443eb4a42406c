"""Sharing an index folder: readers while a writer saves, the advice a broken index gives, who
may read it, and what a failed `rag index` leaves behind."""

from __future__ import annotations

import builtins
import io
import json
import os
import re
import shlex
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from rag import IndexCorrupt, IndexMissing, IndexProblem, Settings, load_index, update
from rag import cli as rag_cli
from rag.indexing.embed import CachedEmbedder

from .conftest import ROOT, SEEDS

# A reader in its own process, as the UI is while `rag index --rebuild` runs in a terminal:
# it loads the index over and over and prints what it saw.
READER = """
import json, logging, sys
from rag.indexing import store
from rag.errors import RagError
retries = []
handler = logging.Handler()
handler.emit = retries.append
logging.getLogger("rag.indexing.store").addHandler(handler)
logging.getLogger("rag.indexing.store").setLevel(logging.INFO)
loads, errors, generations = 0, [], set()
for _ in range(int(sys.argv[2])):
    try:
        generations.add(store.load(sys.argv[1]).generation)
    except RagError as e:
        errors.append(f"{type(e).__name__}: {e}")
    loads += 1
print(json.dumps({"loads": loads, "errors": errors, "generations": len(generations),
                  "retries": len(retries)}))
"""


def test_loads_while_rebuild_saves_again_and_again_never_see_a_false_corrupt(tmp_path, embedder):
    s = Settings.load(env={}, index_dir=str(tmp_path / "index"))
    cached = CachedEmbedder(embedder)  # after the first build, a rebuild is chunking and saving
    update(s, cached, [SEEDS])
    stop, saves = threading.Event(), []

    def rebuild_until_stopped():
        while not stop.is_set():
            saves.append(update(s, cached, [SEEDS], rebuild=True)[0].generation)

    writer = threading.Thread(target=rebuild_until_stopped)
    writer.start()
    try:
        r = subprocess.run(
            [sys.executable, "-c", READER, s.index_dir, "1000"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=300,
        )
    finally:
        stop.set()
        writer.join()
    assert r.returncode == 0, r.stderr
    seen = json.loads(r.stdout)
    print(
        f"\n{seen['loads']} loads during {len(saves)} rebuilds: {seen['generations']} "
        f"generations seen, {seen['retries']} manifests re-read, {len(seen['errors'])} errors"
    )
    assert seen["errors"] == [], seen["errors"][:3]
    assert seen["loads"] == 1000 and len(saves) >= 10 and seen["generations"] >= 5


# -- the advice a damaged index gives ------------------------------------------------------
NOTES = {  # two folders, each with a notes.md, and an upload: what a person's index holds
    "home/notes.md": "# Garden\n\nThe tomatoes went in on the fourth of May.\n",
    "home/recipes.md": "# Bread\n\nThe dough rises for two hours by the stove.\n",
    "work/notes.md": "# Standup\n\nThe release moved to the ninth of June.\n",
    "work/budget.txt": "Budget\n\nThe travel budget for the year is 4,200 euros.\n",
}
UPLOAD = "# Receipt\n\nThe new bicycle cost 640 euros at the shop on Quay Street.\n"


@pytest.fixture()
def cached(embedder):
    return CachedEmbedder(embedder)


@pytest.fixture()
def own_index(tmp_path, cached, monkeypatch) -> Settings:
    """Two folders indexed with `rag index` and one file uploaded through the UI's path."""
    for name, text in NOTES.items():
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_text(text, encoding="utf-8")
    s = Settings.load()  # RAG_INDEX_DIR, as the CLI reads it
    update(s, cached, [tmp_path / "home"])
    update(s, cached, [tmp_path / "work"])
    upload = s.uploads_path / "receipt.md"
    upload.parent.mkdir(parents=True)
    upload.write_text(UPLOAD, encoding="utf-8")
    update(s, cached, [upload], prune=False)  # as ui.service.Service.add_upload does
    monkeypatch.setattr("rag.indexing.embed.load_embedder", lambda model_dir="", backend="": cached)
    monkeypatch.setattr("rag.loader.load_embedder", lambda model_dir="", backend="": cached)
    return s


def _sources(s: Settings, embedder) -> set[str]:
    return {os.path.abspath(e.doc.source) for e in load_index(s, embedder).docs.values()}


def _cli(capsys, *args: str) -> tuple[int, str, str]:
    code = rag_cli.main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_the_advice_for_a_damaged_index_names_its_folders_and_following_it_loses_nothing(
    capsys, tmp_path, own_index, cached
):
    s = own_index
    everything = {str(tmp_path / n) for n in NOTES} | {str(s.uploads_path / "receipt.md")}
    assert _sources(s, cached) == everything
    manifest = json.loads((Path(s.index_dir) / "manifest.json").read_text())
    (Path(s.index_dir) / manifest["files"]["chunks"]).unlink()

    code, out, err = _cli(capsys, "ask", "--mode", "extractive", "What did the bicycle cost?")
    assert code == 1 and out == "" and err.count("\n") == 1, err
    for folder in (tmp_path / "home", tmp_path / "work", s.uploads_path):
        assert f"{folder}/" in err, err
    advice = re.search(r"run `(rag [^`]+)`", err)
    assert advice, err
    args = shlex.split(advice.group(1))
    assert args[:3] == ["rag", "index", "--rebuild"], args

    code, out, err = _cli(capsys, *args[1:])  # exactly what the message said
    assert code == 0 and "rebuilt" in out, err
    assert _sources(s, cached) == everything
    code, out, err = _cli(capsys, "ask", "--mode", "extractive", "What did the bicycle cost?")
    assert code == 0 and "640 euros" in out, err

    # `rag index` with no path reads every folder again, as the help says
    (tmp_path / "work" / "travel.md").write_text(
        "# Travel\n\nThe train to Lyon leaves at seven.\n", encoding="utf-8"
    )
    code, out, err = _cli(capsys, "index")
    assert code == 0 and "1 added, 5 unchanged" in out, (out, err)
    assert _sources(s, cached) == everything | {str(tmp_path / "work" / "travel.md")}


def test_a_manifest_that_cannot_be_parsed_asks_for_the_folders(tmp_path, own_index, cached):
    (Path(own_index.index_dir) / "manifest.json").write_text("{not json")
    with pytest.raises(IndexCorrupt) as e:
        load_index(own_index, cached)
    assert "run `rag index --rebuild --index-dir " in str(e.value)
    assert str(e.value).endswith(" FOLDER...` with every folder it held (it does not say which)")


# -- permissions -----------------------------------------------------------------------------
@pytest.fixture()
def unreadable(monkeypatch):
    """Makes a file unreadable for us: chmod 000, or, for root (whom chmod does not stop), an
    open() that fails the way the kernel would."""

    def make(path: Path) -> None:
        if os.geteuid() != 0:
            path.chmod(0)
            return
        real_open = io.open

        def open_(file, mode="r", *args, **kw):
            if Path(os.fsdecode(file)) == path and not any(c in mode for c in "wax+"):
                raise PermissionError(13, "Permission denied", str(file))
            return real_open(file, mode, *args, **kw)

        monkeypatch.setattr(builtins, "open", open_)
        monkeypatch.setattr(io, "open", open_)

    return make


@pytest.mark.parametrize("which", ["manifest", "chunks", "vectors"])
def test_a_file_we_may_not_read_is_called_that_not_corrupt(
    capsys, own_index, cached, unreadable, which
):
    d = Path(own_index.index_dir)
    name = (
        "manifest.json"
        if which == "manifest"
        else (json.loads((d / "manifest.json").read_text())["files"][which])
    )
    unreadable(d / name)
    with pytest.raises(IndexProblem) as e:
        load_index(own_index, cached)
    assert not isinstance(e.value, IndexCorrupt | IndexMissing), e.value
    assert str(e.value).startswith(f"cannot read {d / name}: permission denied; ")
    assert f"chmod -R a+rX {d}" in str(e.value)
    code, out, err = _cli(capsys, "ask", "--mode", "extractive", "What did the bicycle cost?")
    assert code == 1 and out == "" and err == f"error: {e.value}\n"


# -- a failed `rag index` ----------------------------------------------------------------
@pytest.mark.parametrize("problem", ["mistyped", "empty"])
def test_a_failed_rag_index_leaves_no_index_folder_or_lock_behind(
    capsys, tmp_path, monkeypatch, cached, problem
):
    monkeypatch.setattr("rag.indexing.embed.load_embedder", lambda model_dir="", backend="": cached)
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
    code = "import sys; sys.modules['fcntl'] = None; import rag, rag.indexing.store, rag.indexing.indexer; print('ok')"
    r = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert r.returncode == 0 and r.stdout == "ok\n", r.stderr
