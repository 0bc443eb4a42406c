"""What the chat UI needs from `rag`, without gradio: one pipeline shared by every session,
index changes one at a time, uploads kept inside the uploads folder, a model switch that keeps
the old model when the new one fails. Every method raises `RagError` with a sentence to show.

    >>> service = Service.start(Settings.load(), index_paths=["seeds"])
    >>> service.ask("Where will Macron meet Trump?").text
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import rag
from rag import SUPPORTED_TYPES, Answer, InputError, Settings
from rag.embed import load_embedder

from .render import DocRow, Ref, digest

log = logging.getLogger(__name__)

# The file types rag's ingest reads (tests check this matches the engine).
UPLOAD_TYPES = SUPPORTED_TYPES
MAX_TOP_K = 50
BUNDLED = ""  # the GGUF choice that means "the bundled SmolLM2"

Progress = Callable[[int, int, str], None]


def safe_upload_name(name: str) -> str:
    """A plain file name for an upload: no folders, no leading dots, only safe characters.

    >>> safe_upload_name("../../etc/passwd.txt")
    'passwd.txt'
    """
    base = re.split(r"[\\/]", name or "")[-1]
    stem, dot, ext = base.rpartition(".")
    if not dot:
        stem, ext = base, ""
    ext = "." + ext.lower() if ext else ""
    if ext not in UPLOAD_TYPES:
        shown = ext or "(none)"
        raise InputError(
            f"{base or 'the file'}: unsupported file type {shown}; upload one of {', '.join(UPLOAD_TYPES)}"
        )
    stem = re.sub(r"[^\w.-]+", "-", stem).strip(".-_")[:100] or "document"
    return stem + ext


def upload_destination(folder: Path, name: str) -> Path:
    """Where an upload called `name` is saved; never outside `folder`."""
    dest = folder / safe_upload_name(name)
    if dest.resolve().parent != folder.resolve():
        raise InputError(f"{name}: not a plain file name; rename the file and upload it again")
    return dest


def _is_under(path: str, folder: Path) -> bool:
    try:
        Path(path).resolve().relative_to(folder.resolve())
        return True
    except ValueError:
        return False


def megabytes(n: int) -> str:
    """A size as gradio's own upload check words it (units of 1024), so both limits read alike."""
    if n >= 1024 * 1024:
        return f"{n / 1024 / 1024:.1f} MB"
    return f"{n / 1024:.1f} KB" if n >= 1024 else f"{n} bytes"


def _chunks(n: int) -> str:
    return f"{n} chunk{'' if n == 1 else 's'}"


def refresh_index(settings: Settings, embedder, paths: Sequence[str], say=print):
    """Bring the index up to date with `paths` (fast when nothing changed) and return it.
    Missing folders are skipped with a warning, so an existing index can still be served."""
    present = [p for p in paths if Path(p).exists()]
    for p in paths:
        if p not in present:
            say(f"warning: {p}: no such file or folder; serving the index as it is")
    if not present:
        return rag.load_index(settings, embedder)
    index, report = rag.update(settings, embedder, present)
    for err in report.errors:
        say(f"warning: {err}")
    say(f"{settings.index_dir}/: {report.summary()}")
    return index


class Service:
    def __init__(self, settings: Settings, embedder, pipeline: rag.Pipeline):
        self.settings = settings
        self.embedder = embedder  # the raw embedder, for indexing (the pipeline caches its own)
        self.pipeline = pipeline
        self.gguf = settings.gguf
        self._index_lock = threading.Lock()
        self._model_lock = threading.Lock()

    @classmethod
    def start(cls, settings: Settings, index_paths: Sequence[str] = (), say=print) -> Service:
        """Load the models, update the index from `index_paths`, and build the pipeline."""
        embedder = load_embedder(settings.embed_model)
        index = refresh_index(settings, embedder, index_paths, say)
        generator = rag.make_generator(settings)
        return cls(settings, embedder, rag.Pipeline(settings, index, embedder, generator))

    # -- answers ---------------------------------------------------------------------------
    def overrides(self, top_k=None, mode=None) -> dict:
        out = {}
        if top_k not in (None, ""):
            try:
                k = int(top_k)
            except (TypeError, ValueError):
                raise InputError(f"top-k must be a whole number, not {top_k!r}") from None
            if not 1 <= k <= MAX_TOP_K:
                raise InputError(f"top-k must be between 1 and {MAX_TOP_K}, not {k}")
            out["top_k"] = k
        if mode not in (None, ""):
            if mode not in ("generate", "extractive"):
                raise InputError(f"answer mode must be generate or extractive, not {mode!r}")
            out["mode"] = mode
        return out

    def stream(
        self, question: str, history: Sequence[str] = (), top_k=None, mode=None
    ) -> Iterator[str | Answer]:
        """Draft pieces, then the checked Answer (see `rag.Pipeline.stream`)."""
        history = [h for h in (history or []) if isinstance(h, str) and h.strip()]
        yield from self.pipeline.stream(question, history, **self.overrides(top_k, mode))

    def ask(self, question: str, history: Sequence[str] = (), top_k=None, mode=None) -> Answer:
        answer = None
        for event in self.stream(question, history, top_k, mode):
            if isinstance(event, Answer):
                answer = event
        assert answer is not None
        return answer

    # -- the article viewer ----------------------------------------------------------------
    def source(self, ref: Ref) -> tuple[str, str, str, int, int, str]:
        """(title, source, text, start, end, note) for a cited span of the current index."""
        entry = self.pipeline.index.docs.get(ref.doc_id)
        if entry is None:
            raise InputError(
                f"the document {ref.doc_id!r} is no longer in the index; ask the question again"
            )
        doc = entry.doc
        if not 0 <= ref.start <= ref.end <= len(doc.text):
            raise InputError(
                f"characters {ref.start}-{ref.end} are outside “{doc.title}” "
                "(it changed since this answer); ask the question again"
            )
        note = ""
        if ref.digest and digest(doc.text[ref.start : ref.end]) != ref.digest:
            note = (
                "This document changed after the answer was given, so the highlighted text may "
                "not be what was cited. Ask the question again."
            )
        return doc.title, doc.source, doc.text, ref.start, ref.end, note

    # -- documents -------------------------------------------------------------------------
    def documents(self) -> list[DocRow]:
        index = self.pipeline.index
        counts = index.chunk_counts()
        uploads = self.settings.uploads_path
        rows = [
            DocRow(
                doc_id,
                e.doc.title,
                e.doc.source,
                counts.get(doc_id, 0),
                _is_under(e.doc.source, uploads),
                e.duplicate_of,
            )
            for doc_id, e in index.docs.items()
        ]
        return sorted(rows, key=lambda r: (r.uploaded, r.title.lower()))

    def add_upload(
        self, path: str | Path, name: str | None = None, progress: Progress | None = None
    ) -> str:
        """Save one uploaded file inside the uploads folder and index it. On any problem the
        file is not kept and the index is as it was; the InputError says what to do."""
        path = Path(path)
        name = name or path.name
        dest = upload_destination(self.settings.uploads_path, name)
        size = path.stat().st_size
        limit = self.settings.max_upload_bytes
        if size > limit:
            raise InputError(
                f"{dest.name} is {megabytes(size)}; the upload limit is {megabytes(limit)} "
                "(RAG_MAX_UPLOAD_BYTES)"
            )
        with self._index_lock:
            dest.parent.mkdir(parents=True, exist_ok=True)
            backup = dest.with_name(f".{dest.name}.previous")
            had_previous = dest.exists()
            if had_previous:
                os.replace(dest, backup)

            def undo():
                dest.unlink(missing_ok=True)
                if had_previous:
                    os.replace(backup, dest)

            try:
                shutil.copyfile(path, dest)
                index, report = rag.update(
                    self.settings, self.embedder, [dest], progress=progress, prune=False
                )
            except BaseException:
                undo()
                raise
            if report.errors:
                undo()
                raise InputError(report.errors[0])
            backup.unlink(missing_ok=True)
            self.pipeline.set_index(index)
        return self._describe(report, dest.name)

    def _describe(self, report: rag.IndexReport, name: str) -> str:
        docs = self.pipeline.index.docs
        counts = self.pipeline.index.chunk_counts()
        for verb, ids in (("added", report.added), ("updated", report.updated)):
            for doc_id in ids:
                title = docs[doc_id].doc.title
                return (
                    f"{name}: {verb} “{title}” ({_chunks(counts.get(doc_id, 0))}); ask about it now"
                )
        if report.duplicates:
            twin = docs[report.duplicates[0]].duplicate_of
            return f"{name}: same text as “{docs[twin].doc.title}”, already indexed; nothing new to search"
        return f"{name}: already indexed and unchanged"

    def remove(self, doc_id: str) -> str:
        """Drop a document (and files uploaded with the same text) from the index. An uploaded
        file is deleted too; a file elsewhere stays where it is."""
        with self._index_lock:
            entry = self.pipeline.index.docs.get(doc_id)
            if entry is None:
                raise InputError(f"no document {doc_id!r} in the index; refresh the list")
            gone = [
                e.doc
                for d, e in self.pipeline.index.docs.items()
                if d == doc_id or e.duplicate_of == doc_id
            ]
            index = rag.remove_document(self.settings, self.embedder, doc_id)
            self.pipeline.set_index(index)
        uploads = self.settings.uploads_path
        kept = []
        for doc in gone:
            if _is_under(doc.source, uploads):
                Path(doc.source).unlink(missing_ok=True)
            else:
                kept.append(doc.source)
        msg = f"removed “{entry.doc.title}” from the index"
        if kept:
            msg += f"; its file {kept[0]} stays on disk, so indexing that folder again adds it back"
        return msg

    # -- the model -------------------------------------------------------------------------
    def model_choices(self) -> list[tuple[str, str]]:
        """(label, value) pairs: the bundled model, every .gguf in models_dir, the one in use."""
        choices = [("SmolLM2-135M-Instruct (bundled)", BUNDLED)]
        folder = Path(self.settings.models_dir)
        if folder.is_dir():
            for p in sorted(folder.rglob("*.gguf")):
                choices.append((p.name, str(p)))
        if self.gguf and self.gguf not in [v for _, v in choices]:
            choices.append((Path(self.gguf).name, self.gguf))
        return choices

    def model_name(self) -> str:
        if self.settings.llm_url:
            return f"the LLM server at {self.settings.llm_url}"
        gen = self.pipeline.generator
        return getattr(gen, "name", "no model") if gen else "no model"

    def use_model(self, gguf: str) -> str:
        """Load another GGUF for everyone; if it cannot be loaded the current one stays."""
        gguf = (gguf or "").strip()
        if self.settings.llm_url:
            raise InputError(
                f"answers come from the LLM server at {self.settings.llm_url}; "
                "restart without --llm-url to choose a GGUF file"
            )
        with self._model_lock:
            if gguf == self.gguf:
                return f"{self.model_name()} is already in use"
            # A ModelError leaves the current model in place.
            generator = rag.make_generator(self.settings.replace(gguf=gguf))
            # The pipeline reads `generator` at the start of each answer; answers already being
            # generated finish with the model they started with.
            self.pipeline.set_generator(generator)
            self.gguf = gguf
            return f"now answering with {self.model_name()}"
