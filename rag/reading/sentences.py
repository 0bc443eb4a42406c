"""Text read as it is written: paragraphs, list items, headings and sentences, with exact offsets.

A line break is not a sentence end. Hard-wrapped text (licenses, man pages, PDFs, notes) is
read as paragraphs: a line continues the one before it unless a blank line, a list marker, a
heading or a line that clearly ended early says otherwise. Text with one paragraph per line
(news exports, rendered HTML) is read line by line. Headings come from what marks them: a
Markdown `#`, an underline, a numbered section title, or a short line standing alone.

    >>> text = "Mix 500 grams of flour with 350 grams of\\nwater and 100 grams of starter. Rest it.\\n"
    >>> [text[s.start:s.end] for s in split_sentences(text)]
    ['Mix 500 grams of flour with 350 grams of\\nwater and 100 grams of starter.', 'Rest it.']

Every span is exact: `text[span.start:span.end]` is the sentence, line breaks and all.
"""

from __future__ import annotations

import bisect
import functools
import logging
import re
from dataclasses import dataclass

log = logging.getLogger(__name__)

PYSBD_WINDOW = 3000  # pysbd slows down quadratically with block length: feed it windows
# how text is read into sentences; an index records it, and one read another way is rebuilt
# (2: definitions are units; titles in capitals at the margin are headings; 3: a full stop
# with no space after it, as in "these .REC files", ends no sentence)
READING = 3
LONG_LINES = 200  # a text whose lines run longer than this is not hard-wrapped
# a definition (a term and its description) up to this many characters is one evidence unit:
# its parts only answer together ("DSHELL The login shell ... Defaults to /bin/bash."); a longer
# one is read as sentences, the term leading the first
DEFINITION_UNIT = 400

_ITEM = re.compile(
    r"[ \t]*(?:\d{1,3}[.)]|[a-zA-Z][.)]|\((?:\d{1,3}|[a-zA-Z]|[ivxlc]{1,5})\)|[-*+•–◦▪])[ \t]+(?=\S)"
)
_NUMBERED = re.compile(
    r"[ \t]*(?:\d{1,3}(?:\.\d{1,3})*\.?|[A-Z]\.(?:\d{1,3}\.?)*|(?:section|chapter|part|appendix|article)\s+[\dA-Z][\w.]*[.:]?)\s+\S",
    re.I,
)
_SECTION = re.compile(r"[ \t]*\d{1,3}(?:\.\d{1,3})+\.?[ \t]+[A-Z]")  # "2.1 What is R?"
_ATX = re.compile(r"[ \t]{0,3}#{1,6}(?:[ \t]|$)")
_RULE = re.compile(r"[ \t]*([=\-~^*+#_`':.\"])\1{2,}[ \t]*$")
_FENCE = re.compile(r"[ \t]*(```|~~~)")
_DIRECTIVE = re.compile(
    r"[ \t]*(```|~~~)\{(note|warning|tip|important|caution|attention|danger|error|hint|seealso|admonition|versionadded|versionchanged|deprecated)\}",
    re.I,
)
_TABLE = re.compile(r"[ \t]*\|")
_LEADER = re.compile(r"(?:\.[ \t]?){4,}[ \t]*[\divxlc]{0,6}[ \t]*$", re.I)  # a contents line's tail
_END = re.compile(r"[.!?:;][\"'”’)\]]*$")
_CLOSE = re.compile(r"[.!?][\"'”’)\]]*$")


@dataclass(frozen=True)
class Span:
    start: int
    end: int
    heading: bool = False
    marked: bool = False  # marked as a heading ("#", an underline, a section number)


@dataclass(frozen=True)
class _Line:
    start: int
    end: int  # without the newline
    text: str

    @property
    def blank(self) -> bool:
        return not self.text.strip()

    @property
    def words(self) -> list[str]:
        return self.text.split()


_BOXED = re.compile(r"([ \t]*)\*(.*)\*([ \t\r\f]*)")


def _unbox(line: str) -> str:
    """A line inside a box drawn with asterisks ("*  text  *"), borders blanked out (same
    length, so offsets hold)."""
    m = _BOXED.fullmatch(line)
    if not m or len(line.strip()) < 4:
        return line
    return f"{m.group(1)} {m.group(2)} {m.group(3)}"


def _lines(text: str) -> list[_Line]:
    """Lines split at "\\n" only: a form feed or a lone "\\r" is whitespace inside a line."""
    out, pos = [], 0
    for raw in text.split("\n"):
        out.append(_Line(pos, pos + len(raw), raw))
        pos += len(raw) + 1
    return out


def _wrap_width(lines: list[_Line]) -> int:
    """The width the text was wrapped at (0 when it was not): a high percentile of the lengths
    of its longer lines."""
    lengths = sorted(len(ln.text.rstrip()) for ln in lines if len(ln.text.strip()) >= 20)
    if len(lengths) < 3:
        return 0
    width = lengths[int(0.9 * (len(lengths) - 1))]
    return 0 if width > LONG_LINES else width


def _page_break(line: _Line) -> bool:
    return "\f" in line.text and not line.text.replace("\f", "").strip()


def _heading_text(line: _Line, width: int, alone: bool) -> bool:
    """A line that looks like a title: short, no closing punctuation, starting with a capital
    or a number (a numbered title may end in a full stop: "1. Definitions."). A line alone
    between blank lines may run as long as the text is wide."""
    s = line.text.strip()
    longest = (width or 100) if alone else 0.75 * (width or 100)
    if not s or len(s.split()) > 16 or len(s) > longest:
        return False
    if not (s[0].isupper() or s[0].isdigit()):
        return False
    numbered = bool(_NUMBERED.match(line.text))
    if _END.search(s):
        return numbered and len(s.split()) <= 8 and s.endswith((".", "?"))
    return any(ch.isalpha() for ch in s)


@dataclass(frozen=True)
class Block:
    """A unit that sentences never cross: a paragraph, a list item, a heading, a code line."""

    start: int
    end: int
    kind: str  # paragraph | item | heading | code | definition
    marked: bool = False  # "#", an underline or a section number says it is a heading


def _is_contents_line(text: str) -> bool:
    """A title followed by dot leaders and a page number. Searched from the right end only
    (linear time: a 50 kB line must not backtrack)."""
    tail = text[-160:]  # contents lines are short; a long dotted line must stay linear
    m = _LEADER.search(tail)
    return bool(m) and bool(tail[: m.start()].strip())


def blocks(text: str) -> list[Block]:
    lines = _lines(text)
    width = _wrap_width(lines)
    out: list[Block] = []
    current: list[_Line] = []
    kind = "paragraph"
    fenced = False
    fence = ""  # "code" or "prose" inside a fenced block
    column = 0  # inside a definition: the column its description is indented to

    def flush():
        nonlocal current, kind, column
        if current:
            marked = kind == "heading" and bool(_NUMBERED.match(current[0].text))
            out.append(Block(current[0].start, current[-1].end, kind, marked))
        current, kind, column = [], "paragraph", 0

    for i, ln in enumerate(lines):
        nxt = lines[i + 1] if i + 1 < len(lines) else None
        if _FENCE.match(ln.text):
            flush()
            # a MyST directive ("```{note}") holds prose; only its fences are skipped
            if fence:
                fence = ""
            else:
                fence = "prose" if _DIRECTIVE.match(ln.text) else "code"
            fenced = fence == "code"
            continue
        if fenced:
            if not ln.blank:
                out.append(Block(ln.start, ln.end, "code"))
            continue
        if ln.blank:
            if not _page_break(ln):
                flush()
            continue
        if _RULE.match(ln.text):  # an underline (its heading was flushed) or a ruler
            flush()
            continue
        if _ATX.match(ln.text):
            flush()
            out.append(Block(ln.start, ln.end, "heading", marked=True))
            continue
        underlined = nxt is not None and _RULE.match(nxt.text) and not nxt.blank
        if underlined and not current and len(ln.words) <= 16:
            out.append(Block(ln.start, ln.end, "heading", marked=True))
            continue
        if _is_contents_line(ln.text):  # "2.1 What is R? . . . . 3": a contents entry, not content
            flush()
            continue
        if _TABLE.match(ln.text):
            flush()
            out.append(Block(ln.start, ln.end, "paragraph"))
            continue
        if column:  # a definition's description runs on while it keeps its indent
            if _indent(ln.text) >= column:
                current.append(ln)
                continue
            flush()
        item = bool(_ITEM.match(ln.text))
        section = bool(_SECTION.match(ln.text)) and _standalone_heading(lines, i, width)
        if current and not item and not section and _continues(current[-1], ln, width):
            current.append(ln)
            continue
        flush()
        current = [ln]
        column = _definition(lines, i)
        if column:
            kind = "definition"
        elif _standalone_heading(lines, i, width) or _margin_title(lines, i):
            kind = "heading"
            flush()
        elif item:
            kind = "item"
    flush()
    return out


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" \t"))


_TERM_END = re.compile(r"[.!?;,]$")


def _definition(lines: list[_Line], i: int, nested: bool = True) -> int:
    """The column of the description when line `i` starts a definition, else 0.

    A definition is a term, option or value followed at once by a description indented deeper
    (man pages, `--help` output, reStructuredText definition lists):

        DSHELL The login shell to be used for all new users.      <- the term on the line,
               Defaults to /bin/bash.                                its description aligned

        ADD_EXTRA_GROUPS                                          <- the term alone,
               Setting this to something other than 0 ...            its description below

    A short title at the left margin over indented text is a section heading, not a term
    (man pages put NAME and DESCRIPTION there)."""
    ln = lines[i]
    nxt = lines[i + 1] if i + 1 < len(lines) else None
    if nxt is None or nxt.blank or _RULE.match(nxt.text) or _ITEM.match(ln.text):
        return 0
    here, column = _indent(ln.text), _indent(nxt.text)
    if column < here + 2:
        return 0
    if nested and _definition(lines, i + 1, nested=False):
        return 0  # "Options:" over a list of definitions introduces them
    text = ln.text.rstrip()
    if len(text) > column and text[column - 1] in " \t" and text[column] not in " \t":
        # the description starts on the term's line, at the column the next line keeps
        tag = text[here:column].strip()
        return column if tag and len(tag.split()) <= 3 and not _TERM_END.search(tag) else 0
    term = text.strip()  # the term stands alone on its line
    if len(term) > 80 or len(term.split()) > 10 or _TERM_END.search(term):
        return 0
    if term.endswith(":") and not term.startswith(":"):
        return 0  # "Options:" introduces what follows (a ":field:" is a term)
    if (
        here == 0
        and (term.isupper() or _heading_text(ln, 0, alone=False))
        and not term.startswith(("-", ":"))
    ):
        return 0
    return column


def _margin_title(lines: list[_Line], i: int) -> bool:
    """A title in capitals at the left margin over indented text: a man page's NAME, SYNOPSIS,
    DESCRIPTION."""
    ln = lines[i]
    nxt = lines[i + 1] if i + 1 < len(lines) else None
    term = ln.text.strip()
    return (
        nxt is not None
        and not nxt.blank
        and _indent(ln.text) == 0
        and term.isupper()
        and _indent(nxt.text) >= 2
        and len(term.split()) <= 6
    )


def _continues(prev: _Line, line: _Line, width: int) -> bool:
    """Does `line` carry on the paragraph that `prev` is in?"""
    p, s = prev.text.rstrip(), line.text.strip()
    if not width:  # one paragraph per line; only a line cut mid-sentence carries on
        return not _END.search(p) and s[:1].islower()
    if not _END.search(p):
        return True
    # prev ended a sentence: it carries on only if the next word would not have fit
    return len(p) + 1 + len(s.split()[0]) > width


def _standalone_heading(lines: list[_Line], i: int, width: int) -> bool:
    """A title line: alone between blank lines, or a numbered or capitalised title that the
    next line does not continue (PDFs and wrapped text often have no blank line under one)."""
    ln = lines[i]
    nxt = lines[i + 1] if i + 1 < len(lines) else None
    before = i == 0 or lines[i - 1].blank
    if nxt is None or nxt.blank:
        return before and _heading_text(ln, width, alone=True)
    if not _heading_text(ln, width, alone=False):
        return False
    first = nxt.text.strip()[:1]
    starts_sentence = first.isupper() or first.isdigit() or bool(_ITEM.match(nxt.text))
    if not width:  # one paragraph per line: a short title-like line over a paragraph
        return starts_sentence and not _heading_text(nxt, width, alone=False)
    return starts_sentence and (bool(_NUMBERED.match(ln.text)) or ln.text.strip().isupper())


@functools.lru_cache(maxsize=1)
def _segmenter():
    import pysbd

    return pysbd.Segmenter(language="en", clean=False)


def _strip(text: str, start: int, end: int) -> tuple[int, int]:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end


def split_sentences(text: str, max_len: int = 1200) -> list[Span]:
    """Every sentence and heading of `text`, with exact offsets, in order."""
    text = "\n".join(_unbox(line) for line in text.split("\n"))  # same length, same offsets
    spans: list[Span] = []
    for b in blocks(text):
        s, e = _strip(text, b.start, b.end)
        if s == e or not any(ch.isalnum() for ch in text[s:e]):
            continue
        if b.kind == "heading":
            spans.append(Span(s, e, heading=True, marked=b.marked))
        elif b.kind == "code":
            spans.extend(_hard_split(text, s, e, max_len))
        elif b.kind == "definition" and len(" ".join(text[s:e].split())) <= DEFINITION_UNIT:
            spans.append(Span(s, e))  # a short entry, term and description, is one unit
        else:
            spans.extend(_block_sentences(text, s, e, max_len, b.kind == "item"))
    return [sp for sp in spans if any(ch.isalnum() for ch in text[sp.start : sp.end])]


def _block_sentences(text: str, s: int, e: int, max_len: int, item: bool) -> list[Span]:
    """Sentences of one paragraph or list item. A list marker stays with its first sentence."""
    marker_end = s
    if item:
        m = _ITEM.match(text, s)
        marker_end = m.end() if m else s
    out: list[Span] = []
    while e - marker_end > PYSBD_WINDOW:
        window = text[marker_end : marker_end + PYSBD_WINDOW]
        cut = max(window.rfind(". "), window.rfind("? "), window.rfind("! "))
        if cut > PYSBD_WINDOW // 2:
            cut += 1
        else:
            space = max(window.rfind(" "), window.rfind("\n"))
            cut = space if space > 0 else PYSBD_WINDOW
        head_s, head_e = _strip(text, marker_end, marker_end + cut)
        if head_s < head_e:
            out.extend(_segment(text, head_s, head_e, max_len))
        marker_end, e = _strip(text, marker_end + cut, e)
    if marker_end < e:
        out.extend(_segment(text, marker_end, e, max_len))
    if out and item and out[0].start > s:
        out[0] = Span(s, out[0].end)
    return out


def _segment(text: str, s: int, e: int, max_len: int) -> list[Span]:
    """pysbd over a block read as one line: line breaks become spaces of the same length, so
    every offset pysbd gives is an offset into `text`."""
    block = re.sub(r"[\n\r\f\t\v]", " ", text[s:e])
    try:
        pieces = _segmenter().segment(block)
    except Exception:  # pysbd chokes on some unicode; the whole block is then one sentence
        log.debug("pysbd failed on a block; keeping it whole", exc_info=True)
        pieces = [block]
    found: list[Span] = []
    cursor = 0
    for piece in pieces:
        piece = piece.strip()
        if not piece:
            continue
        idx = block.find(piece, cursor)
        if idx < 0:  # pysbd changed the text; keep the rest of the block as one span
            break
        found.append(Span(s + idx, s + idx + len(piece)))
        cursor = idx + len(piece)
    rest_s, rest_e = _strip(text, s + cursor, e)
    if rest_s < rest_e:
        found.append(Span(rest_s, rest_e))
    return [
        hs for sp in _rejoin(text, found) for hs in _hard_split(text, sp.start, sp.end, max_len)
    ]


def _rejoin(text: str, spans: list[Span]) -> list[Span]:
    """pysbd splits after some abbreviations and numbered markers ("1." "Nothing ..."), and
    inside a word that starts with a full stop ("these .REC files"): a piece that is only a
    marker, starts in lower case, or follows the one before it with no space between belongs
    to the piece before it."""
    out: list[Span] = []
    for sp in spans:
        piece = text[sp.start : sp.end]
        prev = text[out[-1].start : out[-1].end] if out else ""
        if out and (
            piece[:1].islower()
            or sp.start == out[-1].end
            or not _END.search(prev)
            or re.fullmatch(r"\(?\w{1,4}[.)]", prev)
            or sum(c.isalnum() for c in prev) < 3
        ):
            out[-1] = Span(out[-1].start, sp.end)
        else:
            out.append(sp)
    return out


def _hard_split(text: str, start: int, end: int, limit: int) -> list[Span]:
    """Cut an overlong run at whitespace so no span exceeds `limit` (much)."""
    out = []
    while end - start > limit:
        window = text[start + limit // 2 : start + limit]
        cut = max(window.rfind(" "), window.rfind("\n"))
        cut = start + limit // 2 + cut if cut >= 0 else start + limit
        out.append(Span(*_strip(text, start, cut)))
        start = cut
        while start < end and text[start].isspace():
            start += 1
    if start < end:
        out.append(Span(start, end))
    return [sp for sp in out if sp.start < sp.end]


def same_paragraph(text: str, end: int, start: int) -> bool:
    """Are the sentence that ends at `end` and the next one, at `start`, in one block: one
    paragraph, list item or definition, as `blocks` reads them?"""
    starts = _block_starts(text)
    return bisect.bisect_right(starts, end - 1) == bisect.bisect_right(starts, start)


@functools.lru_cache(maxsize=16)
def _block_starts(text: str) -> list[int]:
    return [b.start for b in blocks(text)]


def fold(text: str) -> str:
    """A quote for display: its line breaks and runs of spaces folded to single spaces."""
    return re.sub(r"\s+", " ", text).strip()
