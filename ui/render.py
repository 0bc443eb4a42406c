"""Pure HTML for the chat UI: answers, sources, the document viewer, the document list.

Every piece of text that comes from a question, a model or a document is escaped here, so the
rest of the UI only ever handles finished HTML. No gradio, no I/O: these are plain functions.

Citation links carry their target in the href (the chat's HTML sanitizer drops data-*
attributes): ``#rag-source/<doc_id>/<start>/<end>/<digest>``. The digest is a short hash of the
cited text, so the viewer can tell when a document changed after the answer was given.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from html import escape
from pathlib import PurePath
from urllib.parse import quote, unquote

from rag import Answer, Citation, InputError

REF_PREFIX = "#rag-source/"

BADGES = {  # mode -> (label, what it means, shown as a tooltip)
    "generate": (
        "checked",
        "Written by the model; every sentence was checked against the source it cites.",
    ),
    "extractive": ("quoted from the sources", "Sentences copied word for word from the documents."),
    "abstained": (
        "the documents don't say",
        "No passage in the indexed documents answers this question.",
    ),
    "not_sure": (
        "not sure",
        "The closest passage found, quoted word for word; it may not answer the question. "
        "Read it before relying on it.",
    ),
}

# how sure the engine is, in words (rag.answering.confidence gives the number): of an answer, and of
# "the documents don't say"; each (lowest confidence, words), highest first
SURE_OF_ANSWER = (
    (0.8, "very likely right"),
    (0.6, "likely right"),
    (0.4, "unsure"),
    (0.0, "doubtful: check the source"),
)
SURE_OF_ABSTAINING = (
    (0.8, "likely not in the documents"),
    (0.5, "probably not in the documents"),
    (0.0, "unsure: the documents may say it in other words"),
)
# a passage shown as not sure: the words follow the fitted probability, so a passage more likely
# right than not is never called "possibly not the answer"
SURE_OF_PASSAGE = (
    (0.5, "probably the answer, not confirmed"),
    (0.0, "possibly not the answer"),
)
CONFIDENCE_HELP = (
    "How likely this is right, from a model fitted on questions with known "
    "answers: the reader's verdict, how well the passage matches, and whether "
    "the question's words are in the documents"
)

VIEWER_HINT = (
    '<div class="rag-viewer-empty">Click a <b>[n]</b> marker or a source under an answer '
    "to read it here, highlighted in its document.</div>"
)


def digest(text: str) -> str:
    """A short fingerprint of a cited span, carried in its link."""
    return hashlib.sha1(text.encode("utf-8")).hexdigest()[:10]


def source_ref(c: Citation) -> str:
    return f"{REF_PREFIX}{quote(c.doc_id, safe='')}/{c.start}/{c.end}/{digest(c.quote)}"


@dataclass(frozen=True)
class Ref:
    doc_id: str
    start: int
    end: int
    digest: str = ""


def parse_ref(ref: str) -> Ref:
    """The inverse of `source_ref`, tolerant of a leading '#rag-source/' or not."""
    s = (ref or "").strip()
    if s.startswith(REF_PREFIX):
        s = s[len(REF_PREFIX) :]
    parts = s.split("/")
    if len(parts) not in (3, 4) or not parts[0]:
        raise InputError("that source link is malformed; ask the question again")
    try:
        start, end = int(parts[1]), int(parts[2])
    except ValueError:
        raise InputError("that source link is malformed; ask the question again") from None
    return Ref(unquote(parts[0]), start, end, parts[3] if len(parts) == 4 else "")


# -- chat messages ----------------------------------------------------------------------
def user_html(question: str) -> str:
    return f'<div class="rag-question">{escape(question)}</div>'


def waiting_html() -> str:
    return '<div class="rag-pending">Waiting for a turn…</div>'


def pending_html() -> str:
    return '<div class="rag-pending">Searching the documents…</div>'


CHECKING = (
    "Checking the sources: a reader model is judging whether these passages answer the "
    "question. Its verdict replaces this quote."
)
REWRITING = (
    "Writing a smoother answer in the background. Only the sentences of it that pass "
    "the check against their sources can replace this quote."
)


def error_html(message: str) -> str:
    return f'<div class="rag-error" role="alert">{escape(message)}</div>'


def badge_html(mode: str) -> str:
    """The badge for an answer's mode, or "not_sure" for a passage the engine is not sure of."""
    label, meaning = BADGES[mode]
    kind = mode.replace("_", "-")
    return (
        f'<span class="rag-badge rag-badge-{kind}" title="{escape(meaning)}">{escape(label)}</span>'
    )


def confidence_words(answer: Answer) -> str:
    """The answer's confidence as a person reads it at a glance: "likely right (72%)"; ""
    when none was computed, and while the reader is still checking."""
    if answer.confidence is None or answer.pending == "reader":
        return ""
    scale = {"not_in_documents": SURE_OF_ABSTAINING, "not_sure": SURE_OF_PASSAGE}.get(
        answer.outcome, SURE_OF_ANSWER
    )
    words = next(w for floor, w in scale if answer.confidence >= floor)
    return f"{words} ({answer.confidence:.0%})"


def _cite_link(c: Citation) -> str:
    return (
        f'<a class="rag-cite" href="{source_ref(c)}" '
        f'title="Show this in “{escape(c.title)}”">[{c.n}]</a>'
    )


def answer_text_html(text: str, citations: Iterable[Citation]) -> str:
    """The answer with each [n] marker turned into a link to its cited span."""
    by_n = {c.n: c for c in citations}

    def link(m: re.Match) -> str:
        c = by_n.get(int(m.group(1)))
        return _cite_link(c) if c else m.group(0)

    return re.sub(r"\[(\d+)\]", link, escape(text))


def sources_html(citations: Iterable[Citation]) -> str:
    items = []
    for c in citations:
        items.append(
            f'<a class="rag-source" href="{source_ref(c)}" title="Open the document with this sentence highlighted">'
            f'<span class="rag-source-head"><span class="rag-n">[{c.n}]</span> '
            f'<span class="rag-source-title">{escape(c.title)}</span></span>'
            f'<span class="rag-quote">{escape(c.quote)}</span>'
            f'<span class="rag-file">{escape(PurePath(c.source).name)} · characters {c.start}–{c.end}</span>'
            "</a>"
        )
    if not items:
        return ""
    return f'<div class="rag-sources"><div class="rag-sources-title">Sources</div>{"".join(items)}</div>'


def answer_html(answer: Answer) -> str:
    """A checked answer: badge, text with linked markers, the query used, and its sources."""
    parts = [
        '<div class="rag-answer">',
        f'<div class="rag-answer-head">'
        f"{badge_html('not_sure' if answer.outcome == 'not_sure' else answer.mode)}",
    ]
    words = confidence_words(answer)
    if words:
        parts.append(
            f'<span class="rag-confidence" title="{escape(CONFIDENCE_HELP)}">{escape(words)}</span>'
        )
    seconds = answer.timings.get("total_ms", 0.0) / 1000
    if seconds:
        parts.append(f'<span class="rag-time">{seconds:.1f} s</span>')
    parts.append("</div>")
    parts.append(f'<p class="rag-text">{answer_text_html(answer.text, answer.citations)}</p>')
    if not answer.final:  # the quote stands; the verdict or a rewrite may replace it
        status = CHECKING if answer.pending == "reader" else REWRITING
        parts.append(
            f'<div class="rag-rewriting" role="status"><span class="rag-caret"></span> '
            f"{escape(status)}</div>"
        )
    elif answer.why:
        parts.append(f'<div class="rag-note">Why: {escape(answer.why)}</div>')
    if answer.retrieval_query and answer.retrieval_query.strip() != answer.question.strip():
        parts.append(
            '<div class="rag-query">Follow-up: searched for '
            f"<q>{escape(answer.retrieval_query)}</q></div>"
        )
    parts.append(sources_html(answer.citations))
    parts.append("</div>")
    return "".join(parts)


# -- the document viewer ----------------------------------------------------------------
def article_html(
    doc_id: str, title: str, source: str, text: str, start: int, end: int, note: str = ""
) -> str:
    """The whole article with text[start:end] marked. Offsets, not a search: the engine's
    character offsets index exactly this string."""
    if not 0 <= start <= end <= len(text):
        raise ValueError(f"span {start}-{end} is outside a text of {len(text)} characters")
    warn = f'<div class="rag-error">{escape(note)}</div>' if note else ""
    return (
        '<div class="rag-viewer">'
        f'<div class="rag-viewer-head"><div class="rag-viewer-title">{escape(title)}</div>'
        f'<div class="rag-file">{escape(source)} · highlighted: characters {start}–{end}</div></div>'
        f"{warn}"
        '<div class="rag-article" id="rag-article">'
        f"{escape(text[:start])}"
        f'<mark class="rag-hit" id="rag-hit" data-ref="{quote(doc_id, safe="")}/{start}/{end}">'
        f"{escape(text[start:end])}</mark>"
        f"{escape(text[end:])}"
        "</div></div>"
    )


# -- documents --------------------------------------------------------------------------
@dataclass(frozen=True)
class DocRow:
    doc_id: str
    title: str
    file: str
    chunks: int
    uploaded: bool = False
    duplicate_of: str = ""


def documents_html(rows: list[DocRow]) -> str:
    if not rows:
        return '<div class="rag-viewer-empty">No documents are indexed yet: upload one below.</div>'
    body = []
    for r in rows:
        chunks = f"same text as {escape(r.duplicate_of)}" if r.duplicate_of else str(r.chunks)
        origin = '<span class="rag-tag">uploaded</span>' if r.uploaded else ""
        body.append(
            f'<tr><td>{escape(r.title)} {origin}</td><td class="rag-file">{escape(r.file)}</td>'
            f'<td class="rag-num">{chunks}</td></tr>'
        )
    total = sum(r.chunks for r in rows)
    return (
        '<table class="rag-docs"><thead><tr><th>Title</th><th>File</th>'
        '<th class="rag-num">Chunks</th></tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table>"
        f'<div class="rag-file">{len(rows)} document{"s" if len(rows) != 1 else ""}, '
        f"{total} chunk{'s' if total != 1 else ''}</div>"
    )


def status_html(lines: list[tuple[bool, str]]) -> str:
    """One line per file or action: a check mark or a cross, then the sentence."""
    if not lines:
        return ""
    items = "".join(
        f'<div class="{"rag-ok" if ok else "rag-error"}">{escape(text)}</div>' for ok, text in lines
    )
    return f'<div class="rag-status">{items}</div>'


PHASE_UNITS = {"reading": "files", "chunking": "documents", "embedding": "chunks"}


def uploads_html(jobs: Iterable) -> str:
    """One line per uploaded file (a `ui.service.UploadJob`): its result once indexed, else
    what is being done to it, with a progress bar."""
    items = []
    for job in jobs:
        if job.finished:
            kind = "rag-ok" if job.state == "done" else "rag-error"
            items.append(f'<div class="{kind}">{escape(job.message)}</div>')
            continue
        if job.state == "waiting":
            what, bar = "waiting for the uploads before it", ""
        elif job.total:
            what = f"{job.phase} {job.done:,} of {job.total:,} {PHASE_UNITS.get(job.phase, '')}"
            bar = f'<progress value="{job.done}" max="{job.total}"></progress>'
        else:
            what, bar = f"{job.phase or 'starting'}…", "<progress></progress>"
        items.append(
            f'<div class="rag-pending">{escape(job.name)}: {escape(what.strip())}{bar}</div>'
        )
    return f'<div class="rag-status">{"".join(items)}</div>' if items else ""
