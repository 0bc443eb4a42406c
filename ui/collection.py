"""What the chat says about the collection it answers from: its name, the placeholder, the
example questions. Plain functions over the index; no gradio, no text about any one collection.

Example questions are never made up. A folder of documents may carry an ``examples.json``
beside them, naming its documents by the hash of their text and giving questions about them:

    {"documents": {"notes.txt": "<sha256 of the text>"}, "questions": ["Where ...?"]}

Its questions are offered only while every document it names is indexed. Otherwise the chat
offers no examples and names the indexed documents by their titles instead.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from html import escape
from pathlib import Path

log = logging.getLogger(__name__)

EXAMPLES_FILE = "examples.json"
MAX_TITLES = 3  # titles named in the placeholder; the rest are counted
MAX_TITLE_CHARS = 70


@dataclass(frozen=True)
class Intro:
    """The chat's opening words for one state of the index."""

    title: str  # the browser tab
    header: str  # HTML above the tabs
    placeholder: str  # HTML in the empty chat
    prompt: str  # the question box's placeholder
    examples: tuple[str, ...]


def example_questions(index) -> list[str]:
    """Questions from every `examples.json` found beside the indexed documents whose documents
    are all in the index (matched by text hash, wherever the files were indexed from)."""
    hashes = {e.doc.sha256 for e in index.docs.values()}
    folders = dict.fromkeys(Path(e.doc.source).parent for e in index.docs.values())
    out: list[str] = []
    for folder in folders:
        path = folder / EXAMPLES_FILE
        if not path.is_file():
            continue
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            wanted = set(data["documents"].values())
            questions = [q for q in data["questions"] if isinstance(q, str) and q.strip()]
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
            log.warning("%s: not a usable examples file (%s); no examples from it", path, e)
            continue
        if wanted and wanted <= hashes:
            out += [q.strip() for q in questions if q.strip() not in out]
    return out


def _short(title: str) -> str:
    title = " ".join(title.split())
    return title if len(title) <= MAX_TITLE_CHARS else title[: MAX_TITLE_CHARS - 1].rstrip() + "…"


def subject(titles: Iterable[str]) -> str:
    """The indexed documents in a few words: “A”, “B” and 3 more documents."""
    titles = list(dict.fromkeys(t for t in titles if t))
    named = [f"“{_short(t)}”" for t in titles[:MAX_TITLES]]
    rest = len(titles) - len(named)
    if rest:
        return f"{', '.join(named)} and {rest} more document{'s' if rest > 1 else ''}"
    if len(named) > 1:
        return f"{', '.join(named[:-1])} and {named[-1]}"
    return named[0] if named else ""


def intro(index, name: str = "") -> Intro:
    """Wording for the collection: `name` (Settings.collection) when given, else the titles
    of the indexed documents; examples only from an examples file that fits the index."""
    titles = sorted(
        (e.doc.title for d, e in index.docs.items() if not e.duplicate_of), key=str.lower
    )
    examples = tuple(example_questions(index))
    about = escape(name) if name else escape(subject(titles))
    header = (
        f'<div class="rag-header"><h1>Ask {escape(name) if name else "your documents"}</h1>'
        "<p>Answers come only from the indexed documents. Each one is checked against the "
        "sentence it cites: click a <b>[n]</b> or a source to read it highlighted in its "
        "document.</p></div>"
    )
    if not titles:
        placeholder = "<b>No documents are indexed yet.</b> Add some in the Documents tab."
    else:
        placeholder = f"<b>Ask about {about}</b>" + (", or pick an example:" if examples else "")
    return Intro(
        title=f"{name} · questions and answers" if name else "Ask your documents",
        header=header,
        placeholder=placeholder,
        prompt=f"Ask a question about {name}…" if name else "Ask a question about the documents…",
        examples=examples,
    )
