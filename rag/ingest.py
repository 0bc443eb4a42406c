"""Files in, `Document`s out: .txt and .md as they are, .html through BeautifulSoup, .pdf
through pypdf. Every error names the file and what to do about it."""

from __future__ import annotations

import hashlib
import logging
import re
import time
from pathlib import Path

from .errors import InputError
from .types import Document

log = logging.getLogger(__name__)

SUPPORTED = (".txt", ".md", ".markdown", ".html", ".htm", ".pdf")
MAX_PDF_SECONDS = 60  # a PDF that takes longer to read is refused, not waited for


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def slugify(name: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    return slug[:80] or "document"


def title_from_filename(stem: str) -> str:
    small = {"a", "an", "and", "as", "at", "for", "in", "of", "on", "or", "the", "to", "by"}
    words = re.split(r"[-_\s]+", stem)
    out = [w if (i and w.lower() in small) else w[:1].upper() + w[1:] for i, w in enumerate(words)]
    return " ".join(w for w in out if w) or stem


def is_heading_line(line: str) -> bool:
    """A short line with no closing punctuation, or a markdown heading."""
    s = line.strip()
    if not s:
        return False
    if s.startswith("#"):
        return True
    return (
        len(s) <= 120
        and len(s.split()) <= 16
        and s[-1] not in ".!?:;,…\"”)]"
        and (s[0].isupper() or s[0].isdigit())
    )


def _first_line(text: str) -> str:
    for line in text.splitlines():
        if line.strip():
            return line.strip().lstrip("\ufeff")
    return ""


def make_title(text: str, path: Path) -> str:
    first = _first_line(text)
    if first and is_heading_line(first):
        return first.lstrip("#").strip()
    return title_from_filename(path.stem)


def read_text(path: Path) -> str:
    """The text every offset points into. .txt/.md keep their exact characters."""
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED:
        raise InputError(
            f"{path.name}: unsupported file type {suffix or '(none)'}; "
            f"use one of {', '.join(SUPPORTED)}"
        )
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except OSError as e:
        raise InputError(f"{path}: cannot read it ({e.strerror})") from None
    if not data.strip():
        raise InputError(f"{path.name}: the file is empty; add text to it or remove it")
    if suffix == ".pdf":
        text = _pdf_text(path, data)
    else:
        if b"\x00" in data:
            raise InputError(f"{path.name}: looks like a binary file, not text; convert it to text")
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as e:
            raise InputError(
                f"{path.name}: not UTF-8 text (bad byte at position {e.start}); "
                "save it as UTF-8 and index it again"
            ) from None
        if suffix in (".html", ".htm"):
            text = _html_text(text)
    if not text.strip():
        raise InputError(f"{path.name}: no text could be read from it")
    return text


def _html_text(html: str) -> str:
    import warnings

    from bs4 import BeautifulSoup, MarkupResemblesLocatorWarning, XMLParsedAsHTMLWarning

    with warnings.catch_warnings():  # XHTML, or a page that is just a URL, is read as HTML on purpose
        warnings.simplefilter("ignore", XMLParsedAsHTMLWarning)
        warnings.simplefilter("ignore", MarkupResemblesLocatorWarning)
        soup = BeautifulSoup(html, "html.parser")
    for tag in soup(["script", "style", "noscript", "template", "head"]):
        tag.decompose()
    title = soup.title.get_text(" ", strip=True) if soup.title else ""
    lines = [re.sub(r"[ \t\r\f\v]+", " ", ln).strip() for ln in soup.get_text("\n").splitlines()]
    body = "\n".join(ln for ln in lines if ln)
    return f"{title}\n{body}" if title and not body.startswith(title) else body


class _PdfTooSlow(Exception):
    pass


def _pdf_text(path: Path, data: bytes) -> str:
    """The text of every page. A PDF is untrusted input: pypdf can fail on a broken or hostile
    file in more ways than it documents, and a small file can ask for hours of work (one heavy
    content stream drawn on every page), so reading stops after MAX_PDF_SECONDS."""
    import io

    from pypdf import PdfReader

    deadline = time.monotonic() + MAX_PDF_SECONDS

    def check_time(*_) -> None:  # called before every content-stream operator
        if time.monotonic() > deadline:
            raise _PdfTooSlow

    try:
        reader = PdfReader(io.BytesIO(data))  # tries the empty password if it is encrypted
        pages = []
        for page in reader.pages:
            check_time()
            pages.append((page.extract_text(visitor_operand_before=check_time) or "").strip())
    except _PdfTooSlow:
        raise InputError(
            f"{path.name}: reading this PDF took over {MAX_PDF_SECONDS} s (damaged or too "
            "complex); convert it to text and index that"
        ) from None
    except RecursionError:
        raise InputError(f"{path.name}: not a readable PDF (malformed structure); re-save it") from None
    except Exception as e:  # see the docstring; the one-line reason is kept
        raise InputError(f"{path.name}: {_pdf_problem(e)}") from None
    return "\n\n".join(p for p in pages if p)


def _pdf_problem(e: Exception) -> str:
    from pypdf.errors import FileNotDecryptedError

    if isinstance(e, FileNotDecryptedError):
        return "the PDF is password-protected; save an unprotected copy"
    if "cryptography" in str(e):  # pypdf's DependencyError for AES
        return "the PDF is encrypted (AES); `pip install cryptography` or save an unencrypted copy"
    return f"not a readable PDF ({type(e).__name__}); re-save it"


def load_document(path: str | Path, doc_id: str | None = None) -> Document:
    path = Path(path)
    text = read_text(path)
    return Document(
        doc_id=doc_id or slugify(path.stem),
        title=make_title(text, path),
        source=str(path),
        text=text,
        sha256=sha256_text(text),
    )


def find_files(root: str | Path) -> list[Path]:
    """The supported files under `root` (or `root` itself), in a stable order."""
    root = Path(root)
    if not root.exists():
        raise InputError(f"{root}: no such file or folder")
    if root.is_file():
        if root.suffix.lower() not in SUPPORTED:
            raise InputError(
                f"{root.name}: unsupported file type {root.suffix or '(none)'}; "
                f"use one of {', '.join(SUPPORTED)}"
            )
        return [root]
    files = sorted(
        p
        for p in root.rglob("*")
        if p.is_file()
        and p.suffix.lower() in SUPPORTED
        and not any(part.startswith(".") for part in p.relative_to(root).parts)
    )
    if not files:
        raise InputError(f"{root}: no {'/'.join(SUPPORTED)} files in this folder; add some first")
    return files
