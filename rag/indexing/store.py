"""The index on disk: a manifest that describes it, a JSON-lines chunk store, a FAISS file.

    index/manifest.json          format version, embedding model and dimension, chunker
                                 settings, a hash per document, a checksum per file
    index/chunks-<gen>.jsonl     documents (with their text) and chunk offsets, no pickle
    index/vectors-<gen>.faiss    one unit vector per chunk, row i = chunk i
    index/sentences-<gen>.npy    one unit vector (float16) per sentence of the chunks, in the
                                 order `sentence_rows` gives: embedded once, at index time, so
                                 a question embeds only itself

A save writes a new generation's files, then swaps the manifest in with one atomic rename, then
deletes the old generation. A kill at any point leaves a manifest whose files all exist. Readers
take no lock: one that read the manifest just before a save deleted the files it names sees the
manifest change and reads the new generation instead.

The manifest also records the folders (and files) the index was built from, so every error can
say which ones `rag index --rebuild` will read again.

The index in memory is `rag.indexing.index`; what the manifest holds, and how it is read and checked,
is `rag.indexing.manifest`.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import os
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
from filelock import FileLock

from ..errors import IndexCorrupt, IndexMismatch, IndexMissing, IndexProblem
from ..types import Chunk, Document
from .index import EF_SEARCH, DocEntry, Index, IndexConfig, sentence_rows
from .manifest import (
    check_config,
    config_of,
    data_files,
    manifest_for,
    parse_manifest,
    read_manifest,
    read_manifest_bytes,
    rebuild_hint,
    roots_of,
    unreadable,
)

log = logging.getLogger(__name__)

LOAD_ATTEMPTS = 5  # a reader re-reads a manifest that a save replaced while it was reading


# -- files -----------------------------------------------------------------------------
def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _write_atomic(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def writing(directory: str | Path):
    """One writer at a time per index folder (the UI and a `rag index` in another terminal):
    an exclusive lock on <directory>/.lock from load to save, so no update is lost. If the
    folder did not exist and the work fails before a save, the folder and lock are removed
    again: a mistyped `rag index` leaves nothing behind."""
    directory = Path(directory)
    created = [p for p in (directory, *directory.parents) if not p.exists()]
    try:
        directory.mkdir(parents=True, exist_ok=True)
        lock = FileLock(directory / ".lock")
        lock.acquire()
    except OSError as e:
        raise IndexProblem(
            f"cannot write the index in {directory}/ ({e.strerror or e}): fix the folder's "
            "permissions or choose another with --index-dir, then index again"
        ) from None
    try:
        yield
    except BaseException:
        if created and not (directory / "manifest.json").exists():
            lock.release()
            _remove_new_folders(directory, created)
        raise
    finally:
        if lock.is_locked:
            lock.release()


def _remove_new_folders(directory: Path, created: list[Path]) -> None:
    (directory / ".lock").unlink(missing_ok=True)
    for folder in created:  # innermost first; a folder someone has put something in stays
        try:
            folder.rmdir()
        except OSError:
            return


def save(index: Index, directory: str | Path) -> None:
    try:
        _save(index, Path(directory))
    except OSError as e:  # disk full, read-only folder: the manifest, so the index, is unchanged
        raise IndexProblem(
            f"cannot write the index in {directory}/ ({e.strerror or e}): free some disk space "
            "or fix the folder's permissions, then index again"
        ) from None


def _save(index: Index, directory: Path) -> None:
    import faiss

    directory.mkdir(parents=True, exist_ok=True)
    try:
        old_gen = read_manifest(directory).get("generation", 0)
    except (IndexMissing, IndexCorrupt, IndexMismatch):
        old_gen = 0  # a permission error is raised: this save could not replace the files
    gen = max(index.generation, old_gen if isinstance(old_gen, int) else 0) + 1
    names = {
        "chunks": f"chunks-{gen}.jsonl",
        "vectors": f"vectors-{gen}.faiss",
        "sentences": f"sentences-{gen}.npy",
    }

    lines = []
    for entry in index.docs.values():
        d = entry.doc
        lines.append({"type": "doc", **asdict(d), "duplicate_of": entry.duplicate_of})
    for c in index.chunks:
        lines.append(
            {
                "type": "chunk",
                "doc_id": c.doc_id,
                "start": c.start,
                "end": c.end,
                "heading": c.heading,
                "sentences": [list(s) for s in c.sentences],
            }
        )
    body = "".join(json.dumps(x, ensure_ascii=False) + "\n" for x in lines).encode("utf-8")
    _write_atomic(directory / names["chunks"], body)
    _write_atomic(directory / names["vectors"], faiss.serialize_index(index.faiss_index).tobytes())
    svecs = index.sentence_vectors
    if svecs is None or len(svecs) != len(sentence_rows(index.chunks)):
        raise ValueError("the index's sentence vectors do not match its chunks")
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(svecs, dtype=np.float16), allow_pickle=False)
    _write_atomic(directory / names["sentences"], buf.getvalue())

    checksums = {n: _sha256_file(directory / n) for n in names.values()}
    manifest = manifest_for(index, gen, names, checksums)
    _write_atomic(directory / "manifest.json", json.dumps(manifest, indent=1).encode("utf-8"))
    index.generation = gen
    _remove_stale(directory, set(names.values()))


def _remove_stale(directory: Path, keep: set[str]) -> None:
    for p in directory.iterdir():
        stale = p.name.startswith(("chunks-", "vectors-", "sentences-")) and p.name not in keep
        if stale or (p.name.startswith(".") and p.name.endswith(".tmp")):
            try:
                p.unlink(missing_ok=True)
            except OSError as e:  # a folder in the way: the new index is saved all the same
                log.warning("could not remove %s (%s)", p, e.strerror)


# -- reading ----------------------------------------------------------------------------
def _open(path: Path, directory: Path, hint: str):
    """`path` opened for reading; a missing file or one in the way is corrupt, a file that
    another user's permissions keep from us is not, and says so."""
    try:
        return open(path, "rb")  # noqa: SIM115 - the caller closes it
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        raise IndexCorrupt(f"{path} is missing: {hint}") from None
    except PermissionError:
        raise unreadable(path, directory) from None
    except OSError as e:
        raise IndexCorrupt(f"{path} cannot be read ({e.strerror}): {hint}") from None


def load(directory: str | Path, wanted: IndexConfig | None = None) -> Index:
    """The index in `directory`, checked against its manifest and, if given, `wanted`.

    A save may replace the manifest and delete the files it named while this reads them; then
    the manifest has changed, and the new one is read. Damage stays damage: with the manifest
    unchanged the error is raised at once."""
    directory = Path(directory)
    for attempt in range(LOAD_ATTEMPTS):
        raw = read_manifest_bytes(directory)
        try:
            return _load(directory, parse_manifest(directory, raw), wanted)
        except IndexCorrupt:
            try:
                changed = read_manifest_bytes(directory) != raw
            except IndexProblem:
                changed = False
            if not changed or attempt == LOAD_ATTEMPTS - 1:
                raise
            log.info("the index in %s was saved while it was read; reading it again", directory)
            time.sleep(0.01 * attempt)
    raise AssertionError("unreachable")


def _load(directory: Path, manifest: dict, wanted: IndexConfig | None) -> Index:
    import faiss

    roots = roots_of(manifest)
    hint = rebuild_hint(directory, roots)
    config = config_of(manifest, hint)
    if wanted is not None:
        check_config(config, wanted, directory, hint)
    files = data_files(manifest, hint, manifest.get("version") == 1)
    # every file opened first: once open, a save that deletes them no longer matters
    with contextlib.ExitStack() as stack:
        opened = {
            k: stack.enter_context(_open(directory / n, directory, hint)) for k, n in files.items()
        }
        data = {}
        for kind, f in opened.items():
            try:
                data[kind] = f.read()
            except OSError as e:
                raise IndexCorrupt(f"{f.name} cannot be read ({e.strerror}): {hint}") from None
            if hashlib.sha256(data[kind]).hexdigest() != manifest["checksums"].get(files[kind]):
                raise IndexCorrupt(
                    f"{directory}/{files[kind]} is damaged (checksum differs): {hint}"
                )
    try:
        docs, chunks = _read_chunks(data["chunks"])
        faiss_index = faiss.deserialize_index(np.frombuffer(data["vectors"], dtype=np.uint8))
        vectors = faiss_index.reconstruct_n(0, faiss_index.ntotal) if faiss_index.ntotal else None
        svecs = (
            np.load(io.BytesIO(data["sentences"]), allow_pickle=False)
            if "sentences" in data
            else None
        )
    except (ValueError, KeyError, TypeError, RuntimeError) as e:
        raise IndexCorrupt(f"{directory}/ cannot be read ({type(e).__name__}): {hint}") from None
    if faiss_index.ntotal != len(chunks) or faiss_index.d != config.dim:
        raise IndexCorrupt(f"{directory}/ vectors do not match its chunks: {hint}")
    if svecs is not None and (
        svecs.ndim != 2 or svecs.shape != (len(sentence_rows(chunks)), config.dim)
    ):
        raise IndexCorrupt(f"{directory}/ sentence vectors do not match its chunks: {hint}")
    if hasattr(faiss_index, "hnsw"):
        faiss_index.hnsw.efSearch = EF_SEARCH  # not trusted from the file: older files had less
    index = Index(
        config, docs, chunks, vectors, manifest.get("generation", 0), roots, sentence_vectors=svecs
    )
    index._faiss = faiss_index
    return index


def _read_chunks(data: bytes) -> tuple[dict[str, DocEntry], list[Chunk]]:
    docs: dict[str, DocEntry] = {}
    chunks: list[Chunk] = []
    for line in data.decode("utf-8").split("\n"):  # not splitlines(): text may hold U+2028
        if not line:
            continue
        row = json.loads(line)
        if row["type"] == "doc":
            dup = row.pop("duplicate_of", "")
            row.pop("type")
            docs[row["doc_id"]] = DocEntry(Document(**row), dup)
        else:
            text = docs[row["doc_id"]].doc.text
            s, e = row["start"], row["end"]
            spans = [(s, e), *((a, b) for a, b in row["sentences"])]
            if not all(
                type(a) is int and type(b) is int and 0 <= a <= b <= len(text) for a, b in spans
            ) or not all(s <= a and b <= e for a, b in spans):
                raise ValueError("a chunk's offsets fall outside its document")
            chunks.append(
                Chunk(
                    row["doc_id"],
                    text[s:e],
                    s,
                    e,
                    row["heading"],
                    tuple(tuple(x) for x in row["sentences"]),
                )
            )
    return docs, chunks
