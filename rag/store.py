"""The index on disk: a manifest that describes it, a JSON-lines chunk store, a FAISS file.

    index/manifest.json          format version, embedding model and dimension, chunker
                                 settings, a hash per document, a checksum per file
    index/chunks-<gen>.jsonl     documents (with their text) and chunk offsets, no pickle
    index/vectors-<gen>.faiss    one unit vector per chunk, row i = chunk i

A save writes a new generation's files, then swaps the manifest in with one atomic rename, then
deletes the old generation. A kill at any point leaves a manifest whose files all exist.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from filelock import FileLock

from .errors import IndexCorrupt, IndexError_, IndexMismatch, IndexMissing
from .types import Chunk, Document

log = logging.getLogger(__name__)

FORMAT = "rag-index"
VERSION = 1
ANN_THRESHOLD = 20_000  # above this many chunks, HNSW instead of exact search
EF_SEARCH = 200  # HNSW search breadth: recall@10 0.95 against exact search in `rag bench`
REBUILD_HINT = "run `rag index seeds/ --rebuild` to rebuild it"


@dataclass(frozen=True)
class IndexConfig:
    """What an index was built with; an index is only used with the same config."""

    embed_model: str
    dim: int
    chunk_size: int
    chunk_overlap: int


@dataclass
class DocEntry:
    doc: Document
    duplicate_of: str = ""  # doc_id of the document with the same content, if any


@dataclass
class Index:
    config: IndexConfig
    docs: dict[str, DocEntry] = field(default_factory=dict)
    chunks: list[Chunk] = field(default_factory=list)
    vectors: np.ndarray | None = None
    generation: int = 0
    _faiss: object = None

    def __post_init__(self):
        if self.vectors is None:
            self.vectors = np.zeros((0, self.config.dim), dtype=np.float32)

    # -- queries ------------------------------------------------------------------------
    @property
    def faiss_index(self):
        if self._faiss is None:
            self._faiss = build_faiss(self.vectors)
        return self._faiss

    def search(self, qvecs: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-k (scores, ids) by inner product; ids of -1 mean fewer than k chunks."""
        k = max(1, min(k, len(self.chunks)))
        if not self.chunks:
            return np.zeros((len(qvecs), 0), np.float32), np.zeros((len(qvecs), 0), np.int64)
        return self.faiss_index.search(np.ascontiguousarray(qvecs, dtype=np.float32), k)

    def chunk_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {d: 0 for d in self.docs}
        for c in self.chunks:
            counts[c.doc_id] += 1
        return counts

    # -- changes ------------------------------------------------------------------------
    def replace_documents(
        self, remove: set[str], add: list[tuple[Document, list[Chunk], np.ndarray]]
    ) -> None:
        keep = [i for i, c in enumerate(self.chunks) if c.doc_id not in remove]
        chunks = [self.chunks[i] for i in keep]
        parts = [self.vectors[keep]] if keep else []
        for doc_id in remove:
            self.docs.pop(doc_id, None)
        for doc, doc_chunks, vecs in add:
            self.docs[doc.doc_id] = DocEntry(doc)
            chunks.extend(doc_chunks)
            if len(doc_chunks):
                parts.append(vecs)
        self.chunks = chunks
        self.vectors = (
            np.concatenate(parts).astype(np.float32)
            if parts
            else np.zeros((0, self.config.dim), np.float32)
        )
        self._faiss = None


def build_faiss(vectors: np.ndarray):
    import faiss

    # one query at a time: OpenMP threads only add start-up and busy-waiting (24 ms -> 0.4 ms
    # for 10k chunks under load in `rag bench`)
    faiss.omp_set_num_threads(1)

    dim = vectors.shape[1]
    if len(vectors) > ANN_THRESHOLD:
        index = faiss.IndexHNSWFlat(dim, 32, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = 80
        index.hnsw.efSearch = EF_SEARCH
    else:
        index = faiss.IndexFlatIP(dim)
    if len(vectors):
        index.add(np.ascontiguousarray(vectors, dtype=np.float32))
    return index


# -- files ------------------------------------------------------------------------------
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
        raise IndexError_(
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
        raise IndexError_(
            f"cannot write the index in {directory}/ ({e.strerror or e}): free some disk space "
            "or fix the folder's permissions, then index again"
        ) from None


def _save(index: Index, directory: Path) -> None:
    import faiss

    directory.mkdir(parents=True, exist_ok=True)
    try:
        old_gen = read_manifest(directory).get("generation", 0)
    except (IndexMissing, IndexCorrupt, IndexMismatch):
        old_gen = 0
    gen = max(index.generation, old_gen if isinstance(old_gen, int) else 0) + 1
    names = {"chunks": f"chunks-{gen}.jsonl", "vectors": f"vectors-{gen}.faiss"}

    lines = []
    for entry in index.docs.values():
        d = entry.doc
        lines.append({"type": "doc", **asdict(d), "duplicate_of": entry.duplicate_of})
    for c in index.chunks:
        lines.append(
            {"type": "chunk", "doc_id": c.doc_id, "start": c.start, "end": c.end,
             "heading": c.heading, "sentences": [list(s) for s in c.sentences]}
        )
    body = "".join(json.dumps(x, ensure_ascii=False) + "\n" for x in lines).encode("utf-8")
    _write_atomic(directory / names["chunks"], body)
    _write_atomic(directory / names["vectors"], faiss.serialize_index(index.faiss_index).tobytes())

    counts = index.chunk_counts()
    manifest = {
        "format": FORMAT,
        "version": VERSION,
        "generation": gen,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "embedding": {"model": index.config.embed_model, "dim": index.config.dim},
        "chunker": {"size": index.config.chunk_size, "overlap": index.config.chunk_overlap},
        "files": names,
        "checksums": {n: _sha256_file(directory / n) for n in names.values()},
        "chunks": len(index.chunks),
        "documents": {
            e.doc.doc_id: {"title": e.doc.title, "source": e.doc.source, "sha256": e.doc.sha256,
                           "chunks": counts.get(e.doc.doc_id, 0), "duplicate_of": e.duplicate_of}
            for e in index.docs.values()
        },
    }
    _write_atomic(directory / "manifest.json", json.dumps(manifest, indent=1).encode("utf-8"))
    index.generation = gen
    _remove_stale(directory, set(names.values()))


def _remove_stale(directory: Path, keep: set[str]) -> None:
    for p in directory.iterdir():
        stale = p.name.startswith(("chunks-", "vectors-")) and p.name not in keep
        if stale or (p.name.startswith(".") and p.name.endswith(".tmp")):
            try:
                p.unlink(missing_ok=True)
            except OSError as e:  # a folder in the way: the new index is saved all the same
                log.warning("could not remove %s (%s)", p, e.strerror)


def read_manifest(directory: str | Path) -> dict:
    path = Path(directory) / "manifest.json"
    if not path.exists():
        raise IndexMissing(f"no index at {directory}/: run `rag index seeds/` (or `make index`)")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError):
        raise IndexCorrupt(f"{path} is not valid JSON: {REBUILD_HINT}") from None
    except OSError as e:
        raise IndexCorrupt(f"{path} cannot be read ({e.strerror}): {REBUILD_HINT}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise IndexCorrupt(f"{path} is not a rag index manifest: {REBUILD_HINT}")
    if manifest.get("version") != VERSION:
        raise IndexMismatch(
            f"{directory}/ has index format version {manifest.get('version')}, this rag reads "
            f"version {VERSION}: {REBUILD_HINT}"
        )
    return manifest


def config_of(manifest: dict) -> IndexConfig:
    try:
        return IndexConfig(
            embed_model=manifest["embedding"]["model"],
            dim=int(manifest["embedding"]["dim"]),
            chunk_size=int(manifest["chunker"]["size"]),
            chunk_overlap=int(manifest["chunker"]["overlap"]),
        )
    except (KeyError, TypeError, ValueError):
        raise IndexCorrupt(f"the index manifest is incomplete: {REBUILD_HINT}") from None


def check_config(found: IndexConfig, wanted: IndexConfig, directory: str | Path) -> None:
    if found != wanted:
        diffs = [
            f"{k} {getattr(found, k)!r} (now {getattr(wanted, k)!r})"
            for k in ("embed_model", "dim", "chunk_size", "chunk_overlap")
            if getattr(found, k) != getattr(wanted, k)
        ]
        raise IndexMismatch(
            f"{directory}/ was built with {', '.join(diffs)}: {REBUILD_HINT}, "
            "or use the settings it was built with"
        )


def load(directory: str | Path, wanted: IndexConfig | None = None) -> Index:
    """The index in `directory`, checked against its manifest and, if given, `wanted`."""
    import faiss

    directory = Path(directory)
    manifest = read_manifest(directory)
    config = config_of(manifest)
    if wanted is not None:
        check_config(config, wanted, directory)
    files = _file_names(manifest)
    for name in files.values():
        if not (directory / name).is_file():
            raise IndexCorrupt(f"{directory}/{name} is missing: {REBUILD_HINT}")
        try:
            digest = _sha256_file(directory / name)
        except OSError as e:
            raise IndexCorrupt(f"{directory}/{name} cannot be read ({e.strerror}): {REBUILD_HINT}") from None
        if digest != manifest["checksums"].get(name):
            raise IndexCorrupt(f"{directory}/{name} is damaged (checksum differs): {REBUILD_HINT}")
    try:
        docs, chunks = _read_chunks(directory / files["chunks"])
        faiss_index = faiss.deserialize_index(
            np.frombuffer((directory / files["vectors"]).read_bytes(), dtype=np.uint8)
        )
        vectors = faiss_index.reconstruct_n(0, faiss_index.ntotal) if faiss_index.ntotal else None
    except (ValueError, KeyError, TypeError, RuntimeError, OSError) as e:
        raise IndexCorrupt(f"{directory}/ cannot be read ({type(e).__name__}): {REBUILD_HINT}") from None
    if faiss_index.ntotal != len(chunks) or faiss_index.d != config.dim:
        raise IndexCorrupt(f"{directory}/ vectors do not match its chunks: {REBUILD_HINT}")
    if hasattr(faiss_index, "hnsw"):
        faiss_index.hnsw.efSearch = EF_SEARCH  # not trusted from the file: older files had less
    index = Index(config, docs, chunks, vectors, manifest.get("generation", 0))
    index._faiss = faiss_index
    return index


def _file_names(manifest: dict) -> dict[str, str]:
    """The manifest's data files, which must be plain names inside the index folder."""
    files, sums = manifest.get("files"), manifest.get("checksums")
    names = [files.get(k) for k in ("chunks", "vectors")] if isinstance(files, dict) else []
    plain = all(isinstance(n, str) and n and n == Path(n).name and n[0] != "." for n in names)
    if len(names) != 2 or not plain or not isinstance(sums, dict):
        raise IndexCorrupt(f"the index manifest is incomplete: {REBUILD_HINT}")
    return {"chunks": names[0], "vectors": names[1]}


def _read_chunks(path: Path) -> tuple[dict[str, DocEntry], list[Chunk]]:
    docs: dict[str, DocEntry] = {}
    chunks: list[Chunk] = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            row = json.loads(line)
            if row["type"] == "doc":
                dup = row.pop("duplicate_of", "")
                row.pop("type")
                docs[row["doc_id"]] = DocEntry(Document(**row), dup)
            else:
                text = docs[row["doc_id"]].doc.text
                s, e = row["start"], row["end"]
                spans = [(s, e), *((a, b) for a, b in row["sentences"])]
                if not all(type(a) is int and type(b) is int and 0 <= a <= b <= len(text)
                           for a, b in spans) or not all(s <= a and b <= e for a, b in spans):
                    raise ValueError("a chunk's offsets fall outside its document")
                chunks.append(
                    Chunk(row["doc_id"], text[s:e], s, e, row["heading"],
                          tuple(tuple(x) for x in row["sentences"]))
                )
    return docs, chunks
