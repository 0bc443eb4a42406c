"""Chunks: runs of whole sentences inside one section, up to `size` characters, sharing
`overlap` sentences with their neighbour. Sentences and headings come from `rag.reading.sentences`,
which reads text as it is written (a line break inside a paragraph is not a sentence end).

    >>> [c.text for c in chunk_document("d", "Title\\n\\nOne. Two.\\n", size=50, overlap=0)]
    ['Title\\n\\nOne. Two.']
"""

from __future__ import annotations

import re

from ..types import Chunk
from .sentences import Span, split_sentences

__all__ = ["Span", "chunk_document", "search_text", "split_sentences"]


def _demote_lonely_headings(spans: list[Span]) -> list[Span]:
    """A heading-like line with no sentence after it is content (lists, short notes), unless
    something marks it as a heading ("#", an underline, a section number)."""
    out = []
    for i, sp in enumerate(spans):
        nxt = spans[i + 1] if i + 1 < len(spans) else None
        if sp.heading and (nxt is None or nxt.heading) and not sp.marked:
            sp = Span(sp.start, sp.end, heading=False)
        out.append(sp)
    return out


def chunk_document(doc_id: str, text: str, size: int = 600, overlap: int = 1) -> list[Chunk]:
    """Chunks of whole sentences within a section; a section's first chunk holds its heading."""
    spans = _demote_lonely_headings(split_sentences(text, max_len=max(size * 2, 100)))
    sections: list[tuple[Span | None, list[Span]]] = [(None, [])]
    for sp in spans:
        if sp.heading:
            sections.append((sp, []))
        else:
            sections[-1][1].append(sp)
    if not any(sentences for _, sentences in sections):  # only headings: they are the content
        sections = [(None, [Span(sp.start, sp.end) for sp in spans])]
    chunks: list[Chunk] = []
    for heading, sentences in sections:
        title = (
            " ".join(re.sub(r"^#+\s*", "", text[heading.start : heading.end]).split())
            if heading
            else ""
        )
        for i, group in enumerate(_group(sentences, size, overlap)):
            start = heading.start if (heading and i == 0) else group[0].start
            end = group[-1].end
            chunks.append(
                Chunk(
                    doc_id,
                    text[start:end],
                    start,
                    end,
                    title,
                    tuple((g.start, g.end) for g in group),
                )
            )
    return chunks


def _group(sentences: list[Span], size: int, overlap: int) -> list[list[Span]]:
    groups: list[list[Span]] = []
    current: list[Span] = []
    fresh = 0  # sentences in `current` not already in the previous group
    for sp in sentences:
        if current and fresh and sp.end - current[0].start > size:
            groups.append(current)
            current = current[len(current) - overlap :] if 0 < overlap < len(current) else []
            fresh = 0
        current.append(sp)
        fresh += 1
    if current and fresh:
        groups.append(current)
    return groups


def search_text(title: str, chunk: Chunk) -> str:
    """What is embedded and BM25-indexed for a chunk: its text under its title and heading."""
    return ". ".join(x for x in (title, chunk.heading, chunk.text) if x)
