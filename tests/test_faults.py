"""Faults injected into indexing and into a saved index.

A save is killed at every step (in-process, by copying the index folder at each file operation,
which is exactly what a SIGKILL at that moment leaves on disk) and `rag index` is SIGKILLed at
random moments (a real process). Either way the index must load and be the old or the new
version, whole. Damaged index files must give one line that names `rag index --rebuild`,
never a traceback and never an answer, and `--rebuild` must repair them.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from rag import IndexCorrupt, IndexProblem, Pipeline, Settings, load_index, update
from rag import cli as rag_cli
from rag.indexing import store
from rag.indexing.embed import CachedEmbedder
from rag.reading.chunking import chunk_document

from .conftest import ROOT, SEEDS, file_text

QUESTION = "How many Ukrainians have been displaced?"
FACT = "14 million"
CITIES = [
    "Paris",
    "Kyiv",
    "Warsaw",
    "Berlin",
    "Rome",
    "Madrid",
    "Vienna",
    "Prague",
    "Riga",
    "Oslo",
    "Lisbon",
]


# -- a corpus in two versions ---------------------------------------------------------------
def _paragraphs() -> list[str]:
    out = []
    for path in sorted(SEEDS.glob("*.txt")):
        out += [p.strip() for p in file_text(str(path)).split("\n\n") if p.strip()]
    return out


def corpus(version: str, n: int = 40) -> dict[str, str]:
    """File name -> text. "new" changes every fourth file, deletes two and adds three, so
    `rag index` has real work: re-embed, drop and add."""
    paras = _paragraphs()
    files = {}
    for i in range(n):
        city = CITIES[i % len(CITIES)]
        body = "\n\n".join(paras[(3 * i + k) % len(paras)] for k in range(3))
        text = (
            f"Dispatch {i} from {city}\n\nThis is dispatch number {i}, filed in {city}.\n\n{body}\n"
        )
        if version == "new" and i % 4 == 1:
            text += f"\nUpdate {i}: officials in {city} said the talks would resume on day {i}.\n"
        files[f"dispatch-{i:02d}.txt"] = text
    if version == "new":
        del files["dispatch-06.txt"], files["dispatch-31.txt"]
        for j in range(3):
            body = "\n\n".join(paras[(7 * j + k) % len(paras)] for k in range(3))
            files[f"late-{j}.txt"] = (
                f"Late report {j}\n\nThis late report {j} came in after the rest.\n\n{body}\n"
            )
    return files


def write_version(docs: Path, version: str) -> None:
    docs.mkdir(parents=True, exist_ok=True)
    files = corpus(version)
    for p in docs.iterdir():
        if p.name not in files:
            p.unlink()
    for name, text in files.items():
        path = docs / name
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8", newline="")


def expected_state(version: str) -> dict[str, tuple[str, list[tuple[int, int]]]]:
    """doc_id -> (text, chunk spans): what a complete index of that version holds."""
    s = Settings.load(env={})
    out = {}
    for name, text in corpus(version).items():
        doc_id = Path(name).stem
        spans = [
            (c.start, c.end) for c in chunk_document(doc_id, text, s.chunk_size, s.chunk_overlap)
        ]
        out[doc_id] = (text, spans)
    return out


@functools.cache
def states() -> dict[str, dict]:
    return {"old": expected_state("old"), "new": expected_state("new")}


def index_state(index_dir: Path, embedder) -> str:
    """ "old" or "new": the complete version the index in `index_dir` holds. Fails otherwise."""
    s = Settings.load(env={}, index_dir=str(index_dir))
    index = load_index(s, embedder)
    spans: dict[str, list[tuple[int, int]]] = {d: [] for d in index.docs}
    for c in index.chunks:
        assert index.docs[c.doc_id].doc.text[c.start : c.end] == c.text
        spans[c.doc_id].append((c.start, c.end))
    got = {d: (e.doc.text, spans[d]) for d, e in index.docs.items()}
    matches = [name for name, want in states().items() if got == want]
    assert len(matches) == 1, f"{index_dir} holds neither version whole: {sorted(got)[:5]}..."
    assert len(index.vectors) == len(index.chunks)
    # and it answers, citing its own text
    answer = Pipeline(s, index, embedder).ask(QUESTION, mode="extractive")
    assert answer.mode == "extractive" and FACT in answer.text, answer
    for c in answer.citations:
        assert index.docs[c.doc_id].doc.text[c.start : c.end] == c.quote
    return matches[0]


def data_files(index_dir: Path) -> set[str]:
    """Every file in the folder but the writers' lock; a clean index has exactly the manifest
    and what it names."""
    return {p.name for p in index_dir.iterdir() if p.name != ".lock"}


def clean_files(index_dir: Path) -> set[str]:
    m = json.loads((index_dir / "manifest.json").read_text())
    return {"manifest.json", *m["files"].values()}


@pytest.fixture(scope="module")
def cached(embedder):
    """The real MiniLM behind a cache: in-process builds of the same texts embed once."""
    return CachedEmbedder(embedder)


# -- 1. a kill at each step of a save ---------------------------------------------------------
def test_a_kill_at_any_step_of_a_save_leaves_the_old_or_the_new_index(
    tmp_path, cached, monkeypatch
):
    docs, index_dir = tmp_path / "docs", tmp_path / "index"
    write_version(docs, "old")
    s = Settings.load(env={}, index_dir=str(index_dir))
    update(s, cached, [docs])
    assert index_state(index_dir, cached) == "old"
    write_version(docs, "new")

    snaps: list[Path] = []

    def snapshot(label: str) -> None:  # what a SIGKILL right now would leave on disk
        dst = tmp_path / "snaps" / f"{len(snaps):02d}-{label}"
        shutil.copytree(index_dir, dst)
        snaps.append(dst)

    real_replace, real_unlink = os.replace, Path.unlink

    def replace(src, dst, *a, **kw):
        snapshot(f"before-rename-to-{Path(dst).name}")
        real_replace(src, dst, *a, **kw)
        snapshot(f"after-rename-to-{Path(dst).name}")

    def unlink(self, missing_ok=False):
        inside = self.parent == index_dir
        if inside:
            snapshot(f"before-delete-{self.name}")
        real_unlink(self, missing_ok=missing_ok)
        if inside:
            snapshot(f"after-delete-{self.name}")

    with monkeypatch.context() as m:
        m.setattr(store.os, "replace", replace)
        m.setattr(Path, "unlink", unlink)
        _, report = update(s, cached, [docs])
    assert report.updated and report.added and report.removed
    assert len(snaps) >= 10, [p.name for p in snaps]

    states = [index_state(p, cached) for p in snaps]
    print(
        "\nsave steps:",
        ", ".join(f"{p.name[3:]}={st}" for p, st in zip(snaps, states, strict=True)),
    )
    switch = states.index("new")
    assert states == ["old"] * switch + ["new"] * (len(states) - switch)  # one switch, never back
    assert snaps[switch].name.endswith("after-rename-to-manifest.json")

    # whatever a kill left behind, the next `rag index` finishes the job
    for snap, state in zip(snaps, states, strict=True):
        leftovers_before = data_files(snap) - clean_files(snap)
        _, report = update(Settings.load(env={}, index_dir=str(snap)), cached, [docs])
        assert index_state(snap, cached) == "new", snap.name
        if state == "old":  # it had to save: temp files and the old generation are gone
            assert report.changed and data_files(snap) == clean_files(snap), snap.name
        else:  # nothing to do, nothing saved: leftovers stay until the next save, harmlessly
            assert not report.changed
            assert data_files(snap) - clean_files(snap) == leftovers_before

    # ... and the next save that has work to do removes them
    worst = max(snaps[switch:], key=lambda p: len(data_files(p) - clean_files(p)))
    assert data_files(worst) != clean_files(worst)
    (docs / "dispatch-00.txt").write_text(
        corpus("new")["dispatch-00.txt"] + "\nOne more line.\n", encoding="utf-8"
    )
    update(Settings.load(env={}, index_dir=str(worst)), cached, [docs])
    assert data_files(worst) == clean_files(worst)


# -- 2. SIGKILL of a real `rag index` at random moments ------------------------------------
def rag(args: list[str], index_dir: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    env = {**os.environ, "RAG_INDEX_DIR": str(index_dir), "HF_HUB_OFFLINE": "1"}
    return subprocess.run(
        [sys.executable, "-m", "rag", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=timeout,
    )


def _start_rag_index(docs: Path, index_dir: Path, log: Path) -> subprocess.Popen:
    env = {**os.environ, "RAG_INDEX_DIR": str(index_dir), "HF_HUB_OFFLINE": "1"}
    with open(log, "wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "rag", "index", str(docs)],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def _wait_until(done: Callable[[], bool], proc: subprocess.Popen, timeout: float) -> None:
    end = time.monotonic() + timeout
    while not done() and proc.poll() is None and time.monotonic() < end:
        time.sleep(0.001)


@pytest.mark.slow
def test_sigkill_during_rag_index_at_random_moments(tmp_path, cached):
    """SIGKILL just after the save starts writing (the dangerous moment), then at random
    moments of the whole run; after each kill the index is the old or the new one, whole."""
    rng = random.Random(3)  # seeded: the same kill moments on every run
    docs, pristine = tmp_path / "docs", tmp_path / "pristine"
    write_version(docs, "old")
    update(Settings.load(env={}, index_dir=str(pristine)), cached, [docs])
    write_version(docs, "new")
    start_names = data_files(pristine)

    results = []
    save_starts: list[float] = []  # seconds from launch to the first new file: a run's length
    plans = [("saving", rng.uniform(0.0, 0.012)) for _ in range(2)]  # a save takes ~10-50 ms
    plans += [("anytime", rng.uniform(0.3, 0.9))]
    for i, (when, delay) in enumerate(plans):
        work = tmp_path / f"kill-{i}"
        shutil.copytree(pristine, work)
        t0 = time.monotonic()
        proc = _start_rag_index(docs, work, tmp_path / f"kill-{i}.log")
        try:
            if when == "saving":
                _wait_until(lambda: data_files(work) != start_names, proc, 600)  # noqa: B023
                save_starts.append(time.monotonic() - t0)
                time.sleep(delay)
            else:  # a random fraction of a run, so most kills land before the save
                delay *= max(save_starts)
                _wait_until(lambda: False, proc, delay)
            proc.send_signal(signal.SIGKILL)
        finally:
            proc.kill()
            proc.wait(timeout=60)
        killed = proc.returncode == -signal.SIGKILL
        state = index_state(work, cached)
        leftovers = sorted(data_files(work) - clean_files(work))
        results.append(
            (when, round(delay, 3), "killed" if killed else "finished", state, leftovers)
        )
    print(f"\nthe save starts {max(save_starts):.1f} s into a run; kills:", *results, sep="\n  ")
    assert sum(r[2] == "killed" for r in results) >= 2, results

    # a plain `rag index` over what a kill left finishes the job (the whole job, if the kill
    # came before the save) ...
    last = tmp_path / f"kill-{len(plans) - 1}"
    r = rag(["index", str(docs)], last)
    assert r.returncode == 0, r.stderr
    assert index_state(last, cached) == "new"
    if results[-1][3] == "old":
        assert "updated" in r.stdout and "removed" in r.stdout and "added" in r.stdout, r.stdout
        assert data_files(last) == clean_files(last)
    # ... and `rag ask` answers from it, citing the files
    r = rag(["ask", "--mode", "extractive", "--json", QUESTION], last)
    assert r.returncode == 0, r.stderr
    answer = json.loads(r.stdout)
    assert FACT in answer["answer"] and answer["citations"]
    for c in answer["citations"]:
        assert file_text(c["source"])[c["start"] : c["end"]] == c["quote"]


# -- 3. damaged index files ------------------------------------------------------------------
def _manifest(d: Path) -> dict:
    return json.loads((d / "manifest.json").read_text())


def _edit_manifest(change: Callable[[dict], None]):
    def damage(d: Path) -> None:
        m = _manifest(d)
        change(m)
        (d / "manifest.json").write_text(json.dumps(m))

    return damage


def _file(d: Path, kind: str) -> Path:
    return d / _manifest(d)["files"][kind]


def _rewrite(kind: str, change: Callable[[bytes], bytes], forge_checksum: bool = False):
    def damage(d: Path) -> None:
        path = _file(d, kind)
        path.write_bytes(change(path.read_bytes()))
        if forge_checksum:  # as if our own writer had a bug: the checksum cannot catch it
            m = _manifest(d)
            m["checksums"][path.name] = hashlib.sha256(path.read_bytes()).hexdigest()
            (d / "manifest.json").write_text(json.dumps(m))

    return damage


def _flip(data: bytes) -> bytes:
    i = len(data) // 3
    return data[:i] + bytes([data[i] ^ 0x01]) + data[i + 1 :]


def _shift_offsets(data: bytes) -> bytes:
    rows = [json.loads(line) for line in data.decode().splitlines()]
    for row in rows:
        if row["type"] == "chunk":
            row["end"] += 100_000
    return "".join(json.dumps(r) + "\n" for r in rows).encode()


def _replace_with_folder(kind: str):
    def damage(d: Path) -> None:
        path = d / "manifest.json" if kind == "manifest" else _file(d, kind)
        path.unlink()
        path.mkdir()

    return damage


# name -> (damage, what `rag ask` says, what `rag index` says)
DAMAGE = {
    "truncated-chunks": (_rewrite("chunks", lambda b: b[: len(b) // 2]), "checksum differs", None),
    "empty-chunks": (_rewrite("chunks", lambda b: b""), "checksum differs", None),
    "flipped-byte-chunks": (_rewrite("chunks", _flip), "checksum differs", None),
    "truncated-vectors": (_rewrite("vectors", lambda b: b[:100]), "checksum differs", None),
    "flipped-byte-vectors": (_rewrite("vectors", _flip), "checksum differs", None),
    "missing-vectors": (lambda d: _file(d, "vectors").unlink(), "is missing", None),
    "missing-chunks": (lambda d: _file(d, "chunks").unlink(), "is missing", None),
    "wrong-dimension": (
        _edit_manifest(lambda m: m["embedding"].update(dim=512)),
        "was built with dim 512 (now 384)",
        "vectors do not match its chunks",
    ),
    "manifest-not-json": (
        lambda d: (d / "manifest.json").write_text('{"format": "rag-'),
        "is not valid JSON",
        None,
    ),
    "manifest-newer-format": (
        _edit_manifest(lambda m: m.update(version=99)),
        "has index format version 99",
        None,
    ),
    "manifest-files-not-a-mapping": (
        _edit_manifest(lambda m: m.update(files=[])),
        "incomplete",
        None,
    ),
    "manifest-checksums-null": (
        _edit_manifest(lambda m: m.update(checksums=None)),
        "incomplete",
        None,
    ),
    "manifest-names-a-file-outside": (
        _edit_manifest(lambda m: m["files"].update(chunks="../x.jsonl")),
        "incomplete",
        None,
    ),
    "chunks-is-a-folder": (_replace_with_folder("chunks"), "is missing", None),
    "chunk-offsets-outside-the-text": (
        _rewrite("chunks", _shift_offsets, forge_checksum=True),
        "cannot be read (ValueError)",
        None,
    ),
    "chunk-row-not-json": (
        _rewrite("chunks", lambda b: b + b"{oops\n", forge_checksum=True),
        "cannot be read (JSONDecodeError)",
        None,
    ),
}


@pytest.fixture()
def seed_copy(tmp_path, cached, monkeypatch) -> Path:
    """A fresh index of the seed articles in RAG_INDEX_DIR, for `rag` run in this process
    (with the cached MiniLM, so a rebuild of the same texts costs no model time)."""
    index_dir = tmp_path / "index"
    update(Settings.load(env={}, index_dir=str(index_dir)), cached, [SEEDS])
    monkeypatch.setenv("RAG_INDEX_DIR", str(index_dir))
    monkeypatch.setattr("rag.indexing.embed.load_embedder", lambda model_dir="", backend="": cached)
    monkeypatch.setattr("rag.loader.load_embedder", lambda model_dir="", backend="": cached)
    return index_dir


def run_cli(capsys, *args: str) -> tuple[int, str, str]:
    code = rag_cli.main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(code: int, out: str, err: str, says: str) -> None:
    assert code == 1
    assert out == "", f"printed an answer from a damaged index: {out!r}"
    assert err.endswith("\n") and err.count("\n") == 1, err
    assert err.startswith("error: ") and says in err, err
    assert "run `rag index --rebuild --index-dir " in err, err
    assert "Traceback" not in err


@pytest.mark.parametrize("name", list(DAMAGE))
def test_a_damaged_index_is_one_line_naming_the_fix_and_rebuild_repairs_it(capsys, seed_copy, name):
    damage, ask_says, index_says = DAMAGE[name]
    damage(seed_copy)
    assert_one_line_error(*run_cli(capsys, "ask", "--mode", "extractive", QUESTION), ask_says)
    # `rag index` without --rebuild refuses to build on top of it, the same way
    assert_one_line_error(*run_cli(capsys, "index", str(SEEDS)), index_says or ask_says)
    code, out, err = run_cli(capsys, "index", "--rebuild", str(SEEDS))
    assert code == 0, err
    assert "rebuilt" in out and "Traceback" not in err
    code, out, err = run_cli(capsys, "ask", "--mode", "extractive", QUESTION)
    assert code == 0 and FACT in out, err


def test_a_folder_where_the_manifest_should_be(capsys, seed_copy):
    _replace_with_folder("manifest")(seed_copy)
    for args in (["ask", QUESTION], ["index", str(SEEDS)]):
        assert_one_line_error(*run_cli(capsys, *args), "cannot be read (Is a directory)")
    code, out, err = run_cli(capsys, "index", "--rebuild", str(SEEDS))  # cannot replace a folder
    assert code == 1 and out == "" and err.count("\n") == 1, err
    assert err.startswith(f"error: cannot write the index in {seed_copy}/ (Is a directory)"), err


def test_a_full_disk_during_a_save_is_one_line_and_keeps_the_old_index(
    capsys, seed_copy, cached, tmp_path, monkeypatch
):
    docs = tmp_path / "docs"
    shutil.copytree(SEEDS, docs)
    before = load_index(Settings.load(), cached)
    (docs / "new.txt").write_text(
        "Summit notes\n\nThe summit lasted three hours.\n", encoding="utf-8"
    )

    def no_space(fd):
        raise OSError(28, "No space left on device")

    with monkeypatch.context() as m:
        m.setattr(store.os, "fsync", no_space)
        code, out, err = run_cli(capsys, "index", str(docs))
    assert code == 1 and err.count("\n") == 1 and "Traceback" not in err, err
    assert err.startswith(
        f"error: cannot write the index in {seed_copy}/ (No space left on device)"
    )
    after = load_index(Settings.load(), cached)
    assert [c.text for c in after.chunks] == [c.text for c in before.chunks]
    assert data_files(seed_copy) == clean_files(seed_copy)  # no temp files left behind
    with pytest.raises(IndexProblem):  # the library says the same
        with monkeypatch.context() as m:
            m.setattr(store.os, "fsync", no_space)
            update(Settings.load(), cached, [docs])


def test_every_single_byte_flip_or_cut_is_caught_by_the_checksum(seed_copy, cached):
    """Seeded positions all through both data files, not just the middle."""
    rng = random.Random(11)
    s = Settings.load(env={}, index_dir=str(seed_copy))
    tried = 0
    for kind in ("chunks", "vectors"):
        path = _file(seed_copy, kind)
        good = path.read_bytes()
        for _ in range(25):
            i = rng.randrange(len(good))
            for bad in (
                good[:i] + bytes([good[i] ^ (1 << rng.randrange(8))]) + good[i + 1 :],
                good[:i],
            ):
                path.write_bytes(bad)
                with pytest.raises(IndexCorrupt, match=r"checksum differs.*--rebuild"):
                    load_index(s, cached)
                tried += 1
        path.write_bytes(good)
    assert load_index(s, cached).chunks
    print(f"\n{tried} damaged files tried")


@pytest.mark.slow
def test_a_damaged_index_through_the_real_command(seed_copy):
    """A real process: exit 1, one line on stderr, nothing on stdout, no traceback."""
    DAMAGE["flipped-byte-chunks"][0](seed_copy)
    r = rag(["ask", "--mode", "extractive", QUESTION], seed_copy)
    assert_one_line_error(r.returncode, r.stdout, r.stderr, "checksum differs")
