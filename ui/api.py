"""Named endpoints for scripts and load tests, next to the page, through gradio_client:

    >>> client = Client("http://127.0.0.1:7860/")
    >>> client.predict("Where will Macron meet Trump?", api_name="/ask")  # `rag ask --json`
    /ask (question, history=[], top_k=None, mode=None) -> the answer as a dict
    /documents () -> [{doc_id, title, file, chunks, uploaded, duplicate_of}]
    /upload ([files]) -> [{file, ok, message}]         /remove (doc_id) -> message
    /source (doc_id, start, end) -> {title, source, start, end, quote, html}
    /models () -> {models, in_use, switching}          /use_model (name) -> message

An expected problem reaches the client as an error whose message is the engine's sentence.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import closing
from dataclasses import asdict
from pathlib import Path

import gradio as gr

from rag import Answer, InputError, RagError

from . import render
from .service import Service

ANSWERS = "answers"  # one concurrency group for answers
# Answers in progress at once. Retrieval and the checked quote take a fraction of a second and
# run side by side; only the model's rewrites queue, on the generator's lock (one llama.cpp
# context). So a quote never waits behind someone else's rewrite, up to this many askers.
ANSWER_WORKERS = 32
INDEX = "index"  # uploads and removals, one at a time


def _fail(e: RagError) -> gr.Error:
    """An expected problem, as the one-line plain-text message an API client gets. (These
    endpoints are not called by the page, so the message is never shown as HTML there.)"""
    return gr.Error(str(e), print_exception=False)


def _offset(value, what: str) -> int:
    """A character offset sent by a client: a whole number, or a one-line InputError."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, str) and re.fullmatch(r"\s*\d{1,12}\s*", value):
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    raise InputError(
        f"{what} must be a character offset, a whole number of 0 or more, not {str(value)[:40]!r}"
    )


def add_endpoints(service: Service) -> None:
    """Register the endpoints in the gr.Blocks being built."""

    def ask(
        question: str,
        history: list[str] | None = None,
        top_k: int | None = None,
        mode: str | None = None,
    ) -> Iterator[dict]:
        """Answer one question; `history` is the earlier questions of the conversation.
        Answer first: with a model to rewrite it, the checked quote comes first (`"final":
        false`), then the final answer; `predict` returns the final one."""
        try:
            with closing(service.stream(question, history or [], top_k, mode)) as events:
                for event in events:
                    if isinstance(event, Answer):
                        yield event.to_json()
        except RagError as e:
            raise _fail(e) from None

    def documents() -> list[dict]:
        """The indexed documents: doc_id, title, file, chunks, uploaded, duplicate_of."""
        return [asdict(r) for r in service.documents()]

    def remove(doc_id: str) -> str:
        """Remove a document from the index (and delete it if it was uploaded)."""
        try:
            return service.remove(doc_id)
        except RagError as e:
            raise _fail(e) from None

    def source(doc_id: str, start: int, end: int) -> dict:
        """A document's text with characters start..end highlighted, as HTML."""
        try:
            ref = render.Ref(str(doc_id), _offset(start, "start"), _offset(end, "end"))
            title, src, text, start, end, note = service.source(ref)
        except RagError as e:
            raise _fail(e) from None
        html = render.article_html(doc_id, title, src, text, start, end, note)
        return {
            "title": title,
            "source": src,
            "start": start,
            "end": end,
            "quote": text[start:end],
            "html": html,
        }

    def models() -> dict:
        """The models that can be chosen by name, the one in use, and whether switching is on."""
        return {
            "models": list(service.models()),
            "in_use": service.model,
            "switching": service.settings.allow_model_switch,
        }

    def use_model(name: str) -> str:
        """Load another model, by a name from /models, for everyone (if the server allows it)."""
        try:
            return service.use_model(name)
        except RagError as e:
            raise _fail(e) from None

    def upload(files):
        """Index uploaded files; one {file, ok, message} per file, once all are indexed."""
        jobs = [service.submit_upload(path, Path(path).name) for path in files or []]
        done = [service.wait_upload(job.id) for job in jobs]
        return [{"file": j.name, "ok": j.state == "done", "message": j.message} for j in done]

    gr.api(ask, api_name="ask", concurrency_id=ANSWERS, concurrency_limit=ANSWER_WORKERS)
    gr.api(documents, api_name="documents", concurrency_limit=None)
    gr.api(remove, api_name="remove", concurrency_id=INDEX, concurrency_limit=1)
    gr.api(source, api_name="source", concurrency_limit=None)
    gr.api(models, api_name="models", concurrency_limit=None)
    gr.api(use_model, api_name="use_model", concurrency_limit=1)
    # gr.api cannot take files, so the upload endpoint is an event on hidden components
    files = gr.File(file_count="multiple", visible=False)
    result = gr.JSON(visible=False)
    # indexing runs one file at a time in the service's background worker, so waiting for
    # it here holds no slot that removals or the page's uploads need
    files.upload(upload, files, result, api_name="upload", concurrency_limit=None)
