"""Files in, `Document`s out: .txt, .md and .rst as they are, .html as a reader sees it, .pdf
through pypdf. Every error names the file and what to do about it.

A file is untrusted input. Its extracted text is limited (`max_file_chars`), a PDF is read
for at most MAX_PDF_SECONDS, and text that is mostly control characters is refused.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import time
from pathlib import Path

from ..errors import InputError
from ..types import Document
from .html import html_to_text

log = logging.getLogger(__name__)

SUPPORTED = (".txt", ".md", ".markdown", ".rst", ".html", ".htm", ".pdf")
MAX_PDF_SECONDS = 60  # a PDF that takes longer to read is refused, not waited for
DEFAULT_MAX_CHARS = 3_000_000  # about 1,500 pages of text


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def slugify(name: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    return slug[:80] or "document"


def printable(name: str) -> str:
    """A file name as it may be printed: control characters (newlines, terminal escapes)
    shown as escapes, so a name cannot forge a line or drive the terminal."""
    return "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in name)


def title_from_filename(stem: str) -> str:
    small = {"a", "an", "and", "as", "at", "for", "in", "of", "on", "or", "the", "to", "by"}
    words = re.split(r"[-_\s]+", stem)
    out = [w if (i and w.lower() in small) else w[:1].upper() + w[1:] for i, w in enumerate(words)]
    return " ".join(w for w in out if w) or stem


def make_title(text: str, path: Path, hint: str = "") -> str:
    """The page's own title, else the first line when it reads as a title (short, no closing
    punctuation), else the file name."""
    if hint:
        return " ".join(hint.split())[:200]
    first = next((ln.strip().lstrip("\ufeff") for ln in text[:5000].splitlines() if ln.strip()), "")
    words = first.lstrip("# ").split()
    if first and (
        first.startswith("#")
        or (
            len(first) <= 120
            and len(words) <= 16
            and first[-1] not in '.!?:;,…"”)]'
            and (first[0].isupper() or first[0].isdigit())
        )
    ):
        return " ".join(words)[:200]
    return title_from_filename(path.stem)


def _too_long(path: Path, chars: int, limit: int) -> InputError:
    return InputError(
        f"{printable(path.name)}: {chars:,} characters of text, over the limit of {limit:,} per "
        "file (RAG_MAX_FILE_CHARS); split it into smaller files or raise the limit"
    )


def read_text(path: Path, max_chars: int = DEFAULT_MAX_CHARS) -> str:
    """The text every offset points into: .txt, .md and .rst keep their exact characters;
    .html and .pdf give their extracted text."""
    return read_document(path, max_chars)[0]


def read_document(path: Path, max_chars: int = DEFAULT_MAX_CHARS) -> tuple[str, str]:
    """(text, title) of a file; the title is the page's own for HTML, else ""."""
    name = printable(path.name)
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED:
        raise InputError(
            f"{name}: unsupported file type {printable(suffix) or '(none)'}; "
            f"use one of {', '.join(SUPPORTED)}"
        )
    try:
        size = path.stat().st_size
        if suffix not in (".pdf", ".html", ".htm") and size > 4 * max_chars:
            raise _too_long(path, size, max_chars)  # UTF-8 has at most 4 bytes a character
        data = path.read_bytes()
    except FileNotFoundError:
        raise InputError(f"{name}: no such file") from None
    except PermissionError:
        raise InputError(
            f"{name}: permission denied; make it readable and index it again"
        ) from None
    except OSError as e:
        raise InputError(f"{name}: cannot read it ({e.strerror})") from None
    if not data.strip():
        raise InputError(f"{name}: the file is empty; add text to it or remove it")
    title = ""
    if suffix == ".pdf":
        text = _pdf_text(path, data, max_chars)
    else:
        if b"\x00" in data:
            raise InputError(f"{name}: looks like a binary file, not text; convert it to text")
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError as e:
            raise InputError(
                f"{name}: not UTF-8 text (bad byte at position {e.start}); "
                "save it as UTF-8 and index it again"
            ) from None
        if suffix in (".html", ".htm"):
            title, text = html_to_text(text)
    if len(text) > max_chars:
        raise _too_long(path, len(text), max_chars)
    if not any(ch.isalnum() for ch in text):
        raise InputError(f"{name}: no text could be read from it")
    if _mostly_control(text):
        raise InputError(
            f"{name}: mostly control characters, not readable text; convert it to text"
        )
    return text, title


def _mostly_control(text: str) -> bool:
    sample = text[:200_000]
    bad = sum(1 for ch in sample if not ch.isprintable() and ch not in "\n\r\t\f")
    return bad > 0.1 * len(sample)


class _PdfTooSlow(Exception):
    pass


class _PdfTooLong(Exception):
    pass


def _pdf_text(path: Path, data: bytes, max_chars: int) -> str:
    """The text of every page, without running headers and footers, pages joined by a form
    feed line so a sentence may run on across a page break. A PDF is untrusted input: pypdf
    can fail on a broken or hostile file in more ways than it documents, a small file can ask
    for hours of work, and a few kilobytes can expand to millions of characters."""
    import io

    from pypdf import PdfReader

    deadline = time.monotonic() + MAX_PDF_SECONDS

    def check_time(*_) -> None:  # called before every content-stream operator
        if time.monotonic() > deadline:
            raise _PdfTooSlow

    name = printable(path.name)
    total = 0
    try:
        reader = PdfReader(io.BytesIO(data))  # tries the empty password if it is encrypted
        pages = []
        for page in reader.pages:
            check_time()
            text = (page.extract_text(visitor_operand_before=check_time) or "").strip()
            total += len(text)
            if total > max_chars:
                raise _PdfTooLong
            pages.append(text)
    except _PdfTooSlow:
        raise InputError(
            f"{name}: reading this PDF took over {MAX_PDF_SECONDS} s (damaged or too "
            "complex); convert it to text and index that"
        ) from None
    except _PdfTooLong:
        raise _too_long(path, total, max_chars) from None
    except RecursionError:
        raise InputError(f"{name}: not a readable PDF (malformed structure); re-save it") from None
    except Exception as e:  # see the docstring; the one-line reason is kept
        raise InputError(f"{name}: {_pdf_problem(e)}") from None
    text = "\n\f\n".join(_dehyphenate(p) for p in _without_running_lines(pages) if p)
    return text.translate(_GLYPHS)


# What a PDF's font may leave in place of letters: typographic ligatures, and the control
# codes TeX's T1 (Cork) encoding uses for ligatures, quotes and dashes when a font carries
# no Unicode map. A control code is never text, so the mapping cannot harm a clean file.
_GLYPHS = str.maketrans(
    {
        "\ufb00": "ff", "\ufb01": "fi", "\ufb02": "fl", "\ufb03": "ffi", "\ufb04": "ffl",
        "\ufb05": "st", "\ufb06": "st",
        "\x1b": "ff", "\x1c": "fi", "\x1d": "fl", "\x1e": "ffi", "\x1f": "ffl",
        "\x10": "\u201c", "\x11": "\u201d", "\x15": "\u2013", "\x16": "\u2014",
    }
)  # fmt: skip


def _without_running_lines(pages: list[str]) -> list[str]:
    """Drop page headers and footers: a first or last line that recurs on several pages with
    only its digits changed, or that carries the page's own number ("Chapter 2: R Basics 7"
    on the page after "... 6")."""
    if len(pages) < 3:
        return pages

    def key(line: str) -> str:
        return re.sub(r"\d+", "#", " ".join(line.split()).lower())

    def number(line: str) -> int | None:
        m = re.match(r"\s*(\d{1,5})\b", line) or re.search(r"\b(\d{1,5})\s*$", line)
        return int(m.group(1)) if m and len(line.strip()) <= 100 else None

    def edges(p: str) -> list[str]:
        lines = [ln for ln in p.split("\n") if ln.strip()]
        return lines[:2] + lines[-2:] if len(lines) > 4 else lines

    seen: dict[str, int] = {}
    offsets: dict[int, int] = {}
    for i, p in enumerate(pages):
        for ln in set(edges(p)):
            seen[key(ln)] = seen.get(key(ln), 0) + 1
            n = number(ln)
            if n is not None:
                offsets[n - i] = offsets.get(n - i, 0) + 1
    running = {k for k, n in seen.items() if n >= max(3, len(pages) // 10)}
    offset, hits = max(offsets.items(), key=lambda kv: kv[1], default=(None, 0))
    out = []
    for i, p in enumerate(pages):
        edge = set(edges(p))
        kept = [
            ln
            for ln in p.split("\n")
            if not (
                ln in edge
                and (
                    key(ln) in running
                    or (hits >= 3 and number(ln) == i + offset)
                    or re.fullmatch(r"\s*[ivxlcdm]+\s*", ln, re.I)
                )
            )
        ]
        out.append("\n".join(kept).strip())
    return out


def _dehyphenate(text: str) -> str:
    """Join a word broken at a line end ("rec-\\nommended" -> "recommended\\n")."""
    return re.sub(r"(\w)-\n([a-z]\w*)([.,;:!?)]*)[ \t]?", r"\1\2\3\n", text)


def _pdf_problem(e: Exception) -> str:
    from pypdf.errors import FileNotDecryptedError

    if isinstance(e, FileNotDecryptedError):
        return "the PDF is password-protected; save an unprotected copy"
    if "cryptography" in str(e):  # pypdf's DependencyError for AES
        return "the PDF is encrypted (AES); `pip install cryptography` or save an unencrypted copy"
    return f"not a readable PDF ({type(e).__name__}); re-save it"


def load_document(
    path: str | Path, doc_id: str | None = None, max_chars: int = DEFAULT_MAX_CHARS
) -> Document:
    path = Path(path)
    text, title = read_document(path, max_chars)
    return Document(
        doc_id=doc_id or slugify(path.stem),
        title=make_title(text, path, title),
        source=str(path),
        text=text,
        sha256=sha256_text(text),
    )


def find_files(root: str | Path, problems: list[str] | None = None) -> list[Path]:
    """The supported files under `root` (or `root` itself), in a stable order. A subfolder
    that cannot be read adds one line to `problems` (and a logged warning)."""
    root = Path(root)
    if not root.exists():
        raise InputError(f"{printable(str(root))}: no such file or folder")
    if root.is_file():
        if root.suffix.lower() not in SUPPORTED:
            raise InputError(
                f"{printable(root.name)}: unsupported file type {printable(root.suffix) or '(none)'}; "
                f"use one of {', '.join(SUPPORTED)}"
            )
        return [root]
    problems = [] if problems is None else problems

    def unreadable(e: OSError) -> None:
        line = (
            f"{printable(str(e.filename))}: cannot read this folder ({e.strerror}); "
            "its files were skipped"
        )
        log.warning("%s", line)
        problems.append(line)

    files = []
    for folder, dirs, names in os.walk(root, onerror=unreadable):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        files += [
            Path(folder) / n
            for n in names
            if not n.startswith(".") and Path(n).suffix.lower() in SUPPORTED
        ]
    if not files and not problems:
        raise InputError(
            f"{printable(str(root))}: no {'/'.join(SUPPORTED)} files in this folder; add some first"
        )
    return sorted(files)
