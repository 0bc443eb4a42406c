"""Sentence-aware chunking with exact offsets.

Sentences come from pysbd, one line (paragraph) at a time, and are located in the original text
so that `text[start:end]` is always the sentence. Chunks are runs of whole sentences inside one
section, up to `size` characters, sharing `overlap` sentences with their neighbour.

    >>> [c.text for c in chunk_document("d", "Title\\nOne. Two.\\n", size=50, overlap=0)]
    ['Title\\nOne. Two.']
"""

from __future__ import annotations

import functools
import logging
import re
from dataclasses import dataclass

from .ingest import is_heading_line
from .types import Chunk

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Span:
    start: int
    end: int
    heading: bool = False
    markdown: bool = False  # a "# heading" line: a heading even with nothing under it


@functools.lru_cache(maxsize=1)
def _segmenter():
    import pysbd

    return pysbd.Segmenter(language="en", clean=False)


def _lines(text: str):
    pos = 0
    for line in text.splitlines(keepends=True):
        yield pos, line
        pos += len(line)


def _hard_split(text: str, start: int, end: int, limit: int) -> list[Span]:
    """Cut an overlong run at whitespace so no span exceeds `limit` (much)."""
    out = []
    while end - start > limit:
        cut = text.rfind(" ", start + limit // 2, start + limit)
        cut = cut if cut > start else start + limit
        out.append(Span(start, cut))
        start = cut
        while start < end and text[start].isspace():
            start += 1
    if start < end:
        out.append(Span(start, end))
    return out


def _strip(text: str, start: int, end: int) -> tuple[int, int]:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end


def split_sentences(text: str, max_len: int = 1200) -> list[Span]:
    """Every sentence and heading line of `text`, with exact offsets, in order."""
    spans: list[Span] = []
    for pos, line in _lines(text):
        s, e = _strip(text, pos, pos + len(line))
        if s == e:
            continue
        block = text[s:e]
        if is_heading_line(block):
            spans.append(Span(s, e, heading=True, markdown=block.startswith("#")))
            continue
        spans.extend(_sentences_in_block(text, s, e, max_len))
    return spans


PYSBD_WINDOW = 3000  # pysbd slows down quadratically with block length: feed it windows


def _sentences_in_block(text: str, s: int, e: int, max_len: int) -> list[Span]:
    """Sentences of one line, fed to pysbd in windows cut after a sentence end (or a space)."""
    out: list[Span] = []
    while e - s > PYSBD_WINDOW:
        window = text[s : s + PYSBD_WINDOW]
        cut = max(window.rfind(". "), window.rfind("? "), window.rfind("! "))
        if cut > PYSBD_WINDOW // 2:
            cut += 1
        else:
            space = window.rfind(" ")
            cut = space if space > 0 else PYSBD_WINDOW
        head_s, head_e = _strip(text, s, s + cut)
        if head_s < head_e:
            out.extend(_segment(text, head_s, head_e, max_len))
        s, e = _strip(text, s + cut, e)
    if s < e:
        out.extend(_segment(text, s, e, max_len))
    return out


def _segment(text: str, s: int, e: int, max_len: int) -> list[Span]:
    block = text[s:e]
    try:
        pieces = _segmenter().segment(block)
    except Exception:  # pysbd chokes on some unicode; the whole block is then one sentence
        log.debug("pysbd failed on a block; keeping it whole", exc_info=True)
        pieces = [block]
    out: list[Span] = []
    cursor = 0
    for piece in pieces:
        piece = piece.strip()
        if not piece:
            continue
        idx = block.find(piece, cursor)
        if idx < 0:  # pysbd changed the text; keep the rest of the block as one span
            break
        out.extend(_hard_split(text, s + idx, s + idx + len(piece), max_len))
        cursor = idx + len(piece)
    rest_s, rest_e = _strip(text, s + cursor, e)
    if rest_s < rest_e:
        out.extend(_hard_split(text, rest_s, rest_e, max_len))
    return out


def _demote_lonely_headings(spans: list[Span]) -> list[Span]:
    """A heading-like line with no sentence after it is content (lists, short notes)."""
    out = []
    for i, sp in enumerate(spans):
        nxt = spans[i + 1] if i + 1 < len(spans) else None
        if sp.heading and (nxt is None or nxt.heading) and not sp.markdown:
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
        title = re.sub(r"^#+\s*", "", text[heading.start : heading.end]) if heading else ""
        for i, group in enumerate(_group(sentences, size, overlap)):
            start = heading.start if (heading and i == 0) else group[0].start
            end = group[-1].end
            chunks.append(
                Chunk(doc_id, text[start:end], start, end, title,
                      tuple((g.start, g.end) for g in group))
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
