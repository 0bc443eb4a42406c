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
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import os
import shlex
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
VERSION = 2  # 2: sentence vectors stored with the chunks
READABLE = (1, 2)  # a version-1 index is read without them, and rebuilt by the next `rag index`
ANN_THRESHOLD = 20_000  # above this many chunks, HNSW instead of exact search
EF_SEARCH = 200  # HNSW search breadth: recall@10 0.95 against exact search in `rag bench`
LOAD_ATTEMPTS = 5  # a reader re-reads a manifest that a save replaced while it was reading
DEFAULT_DIR = Path("index")  # Settings.index_dir's default: no --index-dir needed in a hint


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
    roots: list[str] = field(default_factory=list)  # absolute paths `rag index` was given
    _faiss: object = None
    # one row per sentence_rows(chunks); None for an index built in memory without them
    sentence_vectors: np.ndarray | None = None
    _rows: dict | None = None

    def __post_init__(self):
        if self.vectors is None:
            self.vectors = np.zeros((0, self.config.dim), dtype=np.float32)

    def sentence_vector(self, doc_id: str, start: int) -> np.ndarray | None:
        """The stored vector of the sentence starting at `start` in `doc_id`, if any."""
        if self.sentence_vectors is None:
            return None
        if self._rows is None:
            self._rows = {(d, a): i for i, (d, a, _) in enumerate(sentence_rows(self.chunks))}
        i = self._rows.get((doc_id, start))
        return None if i is None else self.sentence_vectors[i].astype(np.float32)

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
        self, remove: set[str], add: list[tuple[Document, list[Chunk], np.ndarray, np.ndarray]]
    ) -> None:
        """Drop the documents in `remove`, then add (document, chunks, chunk vectors, sentence
        vectors in sentence_rows(chunks) order) for each of `add`."""
        keep = [i for i, c in enumerate(self.chunks) if c.doc_id not in remove]
        rows = sentence_rows(self.chunks)
        keep_rows = [i for i, (d, _, _) in enumerate(rows) if d not in remove]
        chunks = [self.chunks[i] for i in keep]
        parts = [self.vectors[keep]] if keep else []
        old = self.sentence_vectors
        sparts = [old[keep_rows]] if keep_rows and old is not None else []
        for doc_id in remove:
            self.docs.pop(doc_id, None)
        for doc, doc_chunks, vecs, svecs in add:
            self.docs[doc.doc_id] = DocEntry(doc)
            chunks.extend(doc_chunks)
            if len(doc_chunks):
                parts.append(vecs)
                sparts.append(svecs)
        self.chunks = chunks
        self.vectors = (
            np.concatenate(parts).astype(np.float32)
            if parts
            else np.zeros((0, self.config.dim), np.float32)
        )
        self.sentence_vectors = (
            np.concatenate(sparts).astype(np.float16)
            if sparts
            else np.zeros((0, self.config.dim), np.float16)
        )
        self._faiss = None
        self._rows = None


def sentence_rows(chunks: list[Chunk]) -> list[tuple[str, int, int]]:
    """(doc_id, start, end) of every sentence of `chunks`, each once, in the order first met:
    the rows of `Index.sentence_vectors`. A document's rows are contiguous when its chunks are."""
    seen: set[tuple[str, int]] = set()
    out = []
    for c in chunks:
        for a, b in c.sentences:
            if (c.doc_id, a) not in seen:
                seen.add((c.doc_id, a))
                out.append((c.doc_id, a, b))
    return out


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
        old_gen = 0  # a permission error is raised: this save could not replace the files
    gen = max(index.generation, old_gen if isinstance(old_gen, int) else 0) + 1
    names = {"chunks": f"chunks-{gen}.jsonl", "vectors": f"vectors-{gen}.faiss",
             "sentences": f"sentences-{gen}.npy"}

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
    svecs = index.sentence_vectors
    if svecs is None or len(svecs) != len(sentence_rows(index.chunks)):
        raise ValueError("the index's sentence vectors do not match its chunks")
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(svecs, dtype=np.float16), allow_pickle=False)
    _write_atomic(directory / names["sentences"], buf.getvalue())

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
        "roots": index.roots,
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
        stale = p.name.startswith(("chunks-", "vectors-", "sentences-")) and p.name not in keep
        if stale or (p.name.startswith(".") and p.name.endswith(".tmp")):
            try:
                p.unlink(missing_ok=True)
            except OSError as e:  # a folder in the way: the new index is saved all the same
                log.warning("could not remove %s (%s)", p, e.strerror)


def _show(path: str | Path) -> str:
    """A path as a person would type it here: relative below the working folder, with a
    slash after a folder, terminal escapes made visible."""
    from .ingest import printable

    p = Path(path)
    with contextlib.suppress(ValueError):
        p = p.relative_to(Path.cwd())
    return printable(str(p)) + ("/" if p.is_dir() else "")


def _command(directory: str | Path, args: str = "") -> str:
    where = "" if Path(directory) == DEFAULT_DIR else f" --index-dir {shlex.quote(str(directory))}"
    return f"`rag index --rebuild{where}{args}`"


def rebuild_hint(directory: str | Path, roots: list[str] | None) -> str:
    """What to run to rebuild the index in `directory`, naming what that reads again.

    >>> rebuild_hint("index", [])
    'run `rag index --rebuild FOLDER...` with every folder it held (it does not say which)'
    """
    if roots:
        names = [_show(r) for r in roots]
        if len(names) > 4:
            names = [*names[:3], f"{len(names) - 3} more"]
        listed = names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"
        return f"run {_command(directory)} to rebuild it from {listed}"
    return (f"run {_command(directory, ' FOLDER...')} with every folder it held "
            "(it does not say which)")


def roots_of(manifest: dict) -> list[str]:
    """The folders and files an index was built from. Indexes saved before roots were
    recorded name their documents' files instead: a rebuild reads exactly those again."""
    roots = manifest.get("roots")
    if isinstance(roots, list) and all(isinstance(r, str) and r for r in roots):
        return roots
    docs = manifest.get("documents")
    if not isinstance(docs, dict):
        return []
    sources = {d.get("source") for d in docs.values() if isinstance(d, dict)}
    return sorted(str(Path(s).absolute()) for s in sources if isinstance(s, str) and s)


def _unreadable(path: Path, directory: Path) -> IndexError_:
    return IndexError_(
        f"cannot read {path}: permission denied; the index's owner can share it with "
        f"`chmod -R a+rX {shlex.quote(str(directory))}`, or build your own with --index-dir"
    )


def _open(path: Path, directory: Path, hint: str):
    """`path` opened for reading; a missing file or one in the way is corrupt, a file that
    another user's permissions keep from us is not, and says so."""
    try:
        return open(path, "rb")  # noqa: SIM115 - the caller closes it
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        raise IndexCorrupt(f"{path} is missing: {hint}") from None
    except PermissionError:
        raise _unreadable(path, directory) from None
    except OSError as e:
        raise IndexCorrupt(f"{path} cannot be read ({e.strerror}): {hint}") from None


def _read_manifest_bytes(directory: Path) -> bytes:
    path = directory / "manifest.json"
    try:
        return path.read_bytes()
    except FileNotFoundError:
        where = "" if directory == DEFAULT_DIR else f" --index-dir {shlex.quote(str(directory))}"
        raise IndexMissing(
            f"no index at {directory}/: run `rag index seeds/{where}` to index the bundled "
            "articles, or name your own folders"
        ) from None
    except PermissionError:
        raise _unreadable(path, directory) from None
    except OSError as e:
        raise IndexCorrupt(
            f"{path} cannot be read ({e.strerror}): {rebuild_hint(directory, None)}"
        ) from None


def read_manifest(directory: str | Path) -> dict:
    return _parse_manifest(Path(directory), _read_manifest_bytes(Path(directory)))


def _parse_manifest(directory: Path, raw: bytes) -> dict:
    path = directory / "manifest.json"
    try:
        manifest = json.loads(raw.decode("utf-8"))
    except (ValueError, UnicodeDecodeError):
        raise IndexCorrupt(f"{path} is not valid JSON: {rebuild_hint(directory, None)}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise IndexCorrupt(f"{path} is not a rag index manifest: {rebuild_hint(directory, None)}")
    if manifest.get("version") not in READABLE:
        raise IndexMismatch(
            f"{directory}/ has index format version {manifest.get('version')}, this rag reads "
            f"version {VERSION}: {rebuild_hint(directory, roots_of(manifest))}"
        )
    return manifest


def config_of(manifest: dict, hint: str) -> IndexConfig:
    try:
        return IndexConfig(
            embed_model=manifest["embedding"]["model"],
            dim=int(manifest["embedding"]["dim"]),
            chunk_size=int(manifest["chunker"]["size"]),
            chunk_overlap=int(manifest["chunker"]["overlap"]),
        )
    except (KeyError, TypeError, ValueError):
        raise IndexCorrupt(f"the index manifest is incomplete: {hint}") from None


def check_config(found: IndexConfig, wanted: IndexConfig, directory: str | Path,
                 hint: str) -> None:
    if found != wanted:
        diffs = [
            f"{k} {getattr(found, k)!r} (now {getattr(wanted, k)!r})"
            for k in ("embed_model", "dim", "chunk_size", "chunk_overlap")
            if getattr(found, k) != getattr(wanted, k)
        ]
        raise IndexMismatch(
            f"{directory}/ was built with {', '.join(diffs)}: {hint}, "
            "or use the settings it was built with"
        )


def load(directory: str | Path, wanted: IndexConfig | None = None) -> Index:
    """The index in `directory`, checked against its manifest and, if given, `wanted`.

    A save may replace the manifest and delete the files it named while this reads them; then
    the manifest has changed, and the new one is read. Damage stays damage: with the manifest
    unchanged the error is raised at once."""
    directory = Path(directory)
    for attempt in range(LOAD_ATTEMPTS):
        raw = _read_manifest_bytes(directory)
        try:
            return _load(directory, _parse_manifest(directory, raw), wanted)
        except IndexCorrupt:
            try:
                changed = _read_manifest_bytes(directory) != raw
            except IndexError_:
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
    files = _file_names(manifest, hint, manifest.get("version") == 1)
    # every file opened first: once open, a save that deletes them no longer matters
    with contextlib.ExitStack() as stack:
        opened = {k: stack.enter_context(_open(directory / n, directory, hint))
                  for k, n in files.items()}
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
        svecs = (np.load(io.BytesIO(data["sentences"]), allow_pickle=False)
                 if "sentences" in data else None)
    except (ValueError, KeyError, TypeError, RuntimeError) as e:
        raise IndexCorrupt(f"{directory}/ cannot be read ({type(e).__name__}): {hint}") from None
    if faiss_index.ntotal != len(chunks) or faiss_index.d != config.dim:
        raise IndexCorrupt(f"{directory}/ vectors do not match its chunks: {hint}")
    if svecs is not None and (svecs.ndim != 2 or svecs.shape != (len(sentence_rows(chunks)), config.dim)):
        raise IndexCorrupt(f"{directory}/ sentence vectors do not match its chunks: {hint}")
    if hasattr(faiss_index, "hnsw"):
        faiss_index.hnsw.efSearch = EF_SEARCH  # not trusted from the file: older files had less
    index = Index(config, docs, chunks, vectors, manifest.get("generation", 0), roots,
                  sentence_vectors=svecs)
    index._faiss = faiss_index
    return index


def _file_names(manifest: dict, hint: str, version_1: bool = False) -> dict[str, str]:
    """The manifest's data files, which must be plain names inside the index folder."""
    files, sums = manifest.get("files"), manifest.get("checksums")
    keys = ("chunks", "vectors") if version_1 else ("chunks", "vectors", "sentences")
    names = [files.get(k) for k in keys] if isinstance(files, dict) else []
    plain = all(isinstance(n, str) and n and n == Path(n).name and n[0] != "." for n in names)
    if len(names) != len(keys) or not plain or not isinstance(sums, dict):
        raise IndexCorrupt(f"the index manifest is incomplete: {hint}")
    return dict(zip(keys, names, strict=True))


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
            if not all(type(a) is int and type(b) is int and 0 <= a <= b <= len(text)
                       for a, b in spans) or not all(s <= a and b <= e for a, b in spans):
                raise ValueError("a chunk's offsets fall outside its document")
            chunks.append(
                Chunk(row["doc_id"], text[s:e], s, e, row["heading"],
                      tuple(tuple(x) for x in row["sentences"]))
            )
    return docs, chunks
