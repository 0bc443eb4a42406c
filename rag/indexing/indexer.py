"""Keep an index in step with folders of documents: add what is new, re-embed what changed,
drop what is gone, skip what is unchanged or a duplicate. Nothing indexed is lost on an error.

The index remembers the folders it was given (uploads as their folder), so `rag index` with
no path, and every `--rebuild`, reads all of them again: a rebuild never drops a folder."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import IndexCorrupt, IndexMismatch, IndexMissing, IndexProblem, InputError
from ..reading.chunking import chunk_document, search_text
from ..reading.ingest import find_files, load_document, printable
from ..reading.sentences import READING
from ..settings import Settings
from ..types import Document
from . import store
from .embed import Embedder
from .index import DocEntry, Index, IndexConfig
from .manifest import VERSION, read_manifest, roots_of

log = logging.getLogger(__name__)

# (done, total, what): what is "reading" (files), then "chunking" (documents), then "embedding"
# (chunks); each phase starts with done=0.
Progress = Callable[[int, int, str], None]


@dataclass
class IndexReport:
    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # one line per file that could not be read
    rebuilt: bool = False
    chunks: int = 0

    @property
    def changed(self) -> bool:
        return bool(self.added or self.updated or self.removed or self.rebuilt)

    def summary(self) -> str:
        parts = [
            f"{len(v)} {k}"
            for k, v in (
                ("added", self.added),
                ("updated", self.updated),
                ("removed", self.removed),
                ("unchanged", self.unchanged),
                ("duplicates skipped", self.duplicates),
            )
            if v
        ]
        head = "rebuilt; " if self.rebuilt else ""
        return f"{head}{', '.join(parts) or 'nothing to do'}; {self.chunks} chunks in the index"


def index_config(settings: Settings, embedder: Embedder) -> IndexConfig:
    return IndexConfig(
        embedder.name, embedder.dim, settings.chunk_size, settings.chunk_overlap, READING
    )


def open_or_new(
    settings: Settings, embedder: Embedder, rebuild: bool = False
) -> tuple[Index, bool]:
    """The index in settings.index_dir if it matches; else a fresh one holding the old
    documents, to be re-chunked and re-embedded. Returns (index, needs_rebuild)."""
    config = index_config(settings, embedder)
    try:
        index = store.load(settings.index_dir)
    except IndexMissing:
        return Index(config), False
    except (IndexCorrupt, IndexMismatch):  # damaged, or another format version
        if not rebuild:
            raise
        log.warning(
            "the index in %s is unreadable; rebuilding it from its folders", settings.index_dir
        )
        return Index(config, roots=_recorded_roots(settings.index_dir)), True
    if index.chunks and index.sentence_vectors is None:
        log.info(
            "upgrading the index in %s to format %d: re-embedding its documents",
            settings.index_dir,
            VERSION,
        )
        rebuild = True
    if rebuild or index.config != config:
        fresh = Index(config, generation=index.generation, roots=index.roots)
        return _carry_documents(index, fresh), True
    return index, False


def _recorded_roots(index_dir: str) -> list[str]:
    """The folders a damaged index was built from, if its manifest can still say."""
    try:
        return roots_of(read_manifest(index_dir))
    except IndexProblem:
        return []


def _root_of(path: str | Path, settings: Settings) -> str:
    """What to remember for a path given to `update`: an upload stands for its folder."""
    p = Path(path).absolute()
    uploads = settings.uploads_path.absolute()
    return str(uploads if _under(str(p), uploads) else p)


def _merge_roots(roots: list[str]) -> list[str]:
    """Each root once, none inside another."""
    unique = sorted(set(roots))
    return [r for r in unique if not any(o != r and _under(r, Path(o)) for o in unique)]


def _find(paths, recorded: list[str], errors: list[str]) -> tuple[list[Path], list[str], list[str]]:
    """The files under the given paths and the recorded roots. A recorded root that is empty
    now is read as empty; one that is gone is skipped with a line in `errors`, and its
    documents are left alone. Returns (files, roots read, roots gone)."""
    files: list[Path] = []
    for p in paths:
        files.extend(find_files(p, errors))
    read, gone = [str(p) for p in paths], []
    for root in recorded:
        if any(_under(root, Path(p)) for p in paths):
            continue  # read above
        if not Path(root).exists():
            errors.append(
                f"{printable(root)}: indexed before but not found now; skipped "
                "(its documents stay in the index)"
            )
            gone.append(root)
            continue
        try:
            files.extend(find_files(root, errors))
        except InputError:  # an empty folder: its documents are gone
            pass
        read.append(root)
    return list(dict.fromkeys(files)), read, gone


def _carry_documents(old: Index, fresh: Index) -> Index:
    fresh.docs = {k: DocEntry(v.doc, v.duplicate_of) for k, v in old.docs.items()}
    return fresh


def _unique_id(doc: Document, by_source: dict[str, str], taken: set[str]) -> Document:
    """The id the document's file had before, else its name made unique among the ids in
    the index and those given out in this run (two folders may each hold a notes.md)."""
    source = os.path.abspath(doc.source)
    doc_id = by_source.get(source)
    if doc_id is None:
        base, n, doc_id = doc.doc_id, 2, doc.doc_id
        while doc_id in taken:
            doc_id, n = f"{base}-{n}", n + 1
        taken.add(doc_id)
        by_source[source] = doc_id
    return Document(doc_id, doc.title, doc.source, doc.text, doc.sha256)


def _under(source: str, root: Path) -> bool:
    try:
        Path(source).resolve().relative_to(root.resolve())
        return True
    except ValueError:
        return Path(source).resolve() == root.resolve()


def update(
    settings: Settings,
    embedder: Embedder,
    paths: list[str | Path],
    rebuild: bool = False,
    progress: Progress | None = None,
    prune: bool = True,
) -> tuple[Index, IndexReport]:
    """Bring the index in line with the files under `paths` and save it.

    With no `paths`, or with `rebuild`, every folder the index was built from is read too.
    With `prune`, documents that came from under a path and are gone from it are removed.
    Files that cannot be read are reported in `errors` and change nothing.
    """
    with store.writing(settings.index_dir):
        return _update(settings, embedder, paths, rebuild, progress, prune)


def _update(settings, embedder, paths, rebuild, progress, prune) -> tuple[Index, IndexReport]:
    index, needs_rebuild = open_or_new(settings, embedder, rebuild)
    report = IndexReport(rebuilt=needs_rebuild)
    recorded = index.roots if rebuild or not paths else []
    if not paths and not recorded:
        raise InputError("no folder to index: name one, e.g. `rag index seeds/`")
    files, read, gone = _find(paths, recorded, report.errors)
    roots_before = list(index.roots)
    found: list[Document] = []
    for i, f in enumerate(files):
        if progress:
            progress(i, len(files), "reading")
        try:
            found.append(load_document(f, max_chars=settings.max_file_chars))
        except InputError as e:
            report.errors.append(str(e))
    if progress:
        progress(len(files), len(files), "reading")
    seen_sources = {str(f) for f in files}
    remove: set[str] = set()
    if prune:
        roots = [Path(p) for p in read]
        for doc_id, entry in index.docs.items():
            src = entry.doc.source
            if (
                src not in seen_sources
                and any(_under(src, r) for r in roots)
                and not Path(src).exists()
            ):
                remove.add(doc_id)
                report.removed.append(doc_id)
    by_hash = {
        e.doc.sha256: e.doc.doc_id
        for e in index.docs.values()
        if not e.duplicate_of and e.doc.doc_id not in remove
    }
    todo: list[Document] = []
    by_source = {os.path.abspath(e.doc.source): d for d, e in index.docs.items()}
    taken = set(index.docs)
    for doc in found:
        doc = _unique_id(doc, by_source, taken)
        old = index.docs.get(doc.doc_id)
        if old and old.doc.sha256 == doc.sha256 and not needs_rebuild:
            report.unchanged.append(doc.doc_id)
            continue
        twin = by_hash.get(doc.sha256)
        if twin and twin != doc.doc_id:
            index.docs[doc.doc_id] = DocEntry(doc, duplicate_of=twin)
            report.duplicates.append(doc.doc_id)
            continue
        by_hash[doc.sha256] = doc.doc_id
        (report.updated if old and not needs_rebuild else report.added).append(doc.doc_id)
        todo.append(doc)
    if needs_rebuild:  # documents kept from before are re-chunked from their stored text
        names = {d.doc_id for d in todo} | remove
        for entry in list(index.docs.values()):
            if entry.doc.doc_id not in names and not entry.duplicate_of:
                todo.append(entry.doc)
    additions = _embed_documents(todo, settings, embedder, progress)
    replaced = remove | {d.doc_id for d in todo}
    if additions or remove or needs_rebuild:
        index.replace_documents(replaced, additions)
    # duplicates whose twin was removed are dropped too: they have no chunks of their own
    for doc_id in [
        d for d, e in index.docs.items() if e.duplicate_of and e.duplicate_of not in index.docs
    ]:
        index.docs.pop(doc_id)
        report.removed.append(doc_id)
    # a path is remembered once a document came from it: a rejected upload changes nothing
    kept = [r for r in gone if any(_under(e.doc.source, Path(r)) for e in index.docs.values())]
    new = [_root_of(p, settings) for p in paths if any(_under(d.source, Path(p)) for d in found)]
    index.roots = _merge_roots([r for r in index.roots if r not in gone] + kept + new)
    if (
        report.changed
        or report.duplicates
        or index.roots != roots_before
        or not (Path(settings.index_dir) / "manifest.json").exists()
    ):
        store.save(index, settings.index_dir)
    report.chunks = len(index.chunks)
    return index, report


def _embed_documents(
    docs: list[Document],
    settings: Settings,
    embedder: Embedder,
    progress: Progress | None,
    batch_chunks: int = 256,
):
    """Chunk each document and embed the chunks in batches across documents (one small
    document per model call leaves most of the batch empty)."""
    chunked = []
    for i, d in enumerate(docs):
        if progress:
            progress(i, len(docs), "chunking")
        chunked.append(
            (d, chunk_document(d.doc_id, d.text, settings.chunk_size, settings.chunk_overlap))
        )
    total = sum(len(chunks) for _, chunks in chunked) or 1
    if progress:
        progress(len(docs), len(docs), "chunking")
        progress(0, total, "embedding")
    # each chunk's text, and the sentences it is the first chunk to hold: every sentence is
    # embedded once, here, so a question embeds only itself (rows in sentence_rows order)
    items, per_doc = [], []  # per_doc: how many sentence rows each document has
    for d, chunks in chunked:
        seen: set[int] = set()
        for c in chunks:
            new = [d.text[a:b] for a, b in c.sentences if a not in seen]
            seen.update(a for a, _ in c.sentences)
            items.append((search_text(d.title, c), new))
        per_doc.append(len(seen))
    vectors, svectors = [], []
    for i in range(0, len(items), batch_chunks):
        batch = items[i : i + batch_chunks]
        texts = [t for t, _ in batch]
        embedded = embedder.embed(texts + [s for _, new in batch for s in new])
        vectors.append(embedded[: len(texts)])
        svectors.append(embedded[len(texts) :])
        if progress:
            progress(min(i + batch_chunks, len(items)), total, "embedding")
    flat = np.concatenate(vectors) if vectors else np.zeros((0, embedder.dim), np.float32)
    sflat = np.concatenate(svectors) if svectors else np.zeros((0, embedder.dim), np.float32)
    out, at, sat = [], 0, 0
    for (doc, chunks), rows in zip(chunked, per_doc, strict=True):
        out.append((doc, chunks, flat[at : at + len(chunks)], sflat[sat : sat + rows]))
        at += len(chunks)
        sat += rows
    return out


def remove_document(settings: Settings, embedder: Embedder, doc_id: str) -> Index:
    with store.writing(settings.index_dir):
        return _remove_document(settings, embedder, doc_id)


def _remove_document(settings: Settings, embedder: Embedder, doc_id: str) -> Index:
    index = load_index(settings, embedder)
    if doc_id not in index.docs:
        raise InputError(f"no document {doc_id!r} in the index")
    twins = [d for d, e in index.docs.items() if e.duplicate_of == doc_id]
    index.replace_documents({doc_id, *twins}, [])
    store.save(index, settings.index_dir)
    return index


def load_index(settings: Settings, embedder: Embedder) -> Index:
    """The saved index, refused if it was built with another model or chunker."""
    return store.load(settings.index_dir, index_config(settings, embedder))
