"""Broken and random bytes through the document parsers.

Every input must end as either a Document whose chunks point exactly into its text, or an
InputError with a one-line message: never another exception, never a hang. Each example runs
under an alarm (a clean failure if Python code loops) and a faulthandler watchdog (a hard exit
with a traceback if C code loops, so CI never hangs). `pytest -s` prints how many inputs each
test tried.
"""

from __future__ import annotations

import faulthandler
import os
import re
import signal
import sys
import zlib
from collections import Counter
from contextlib import contextmanager

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rag import InputError
from rag.reading.chunking import chunk_document
from rag.reading.ingest import load_document

from .test_index import _pdf, _tiny_pdf

# a warning printed while indexing a user's file is noise in their terminal: fail on it
pytestmark = pytest.mark.filterwarnings("error")

ALARM_S = 30  # generous: 2 shared cores; a real parse of these inputs takes well under 1 s
WATCHDOG_S = 90  # only if C code ignores the alarm

TRIED: Counter[str] = Counter()
OUTCOMES: Counter[str] = Counter()


class Hang(BaseException):
    """Raised by the alarm; a BaseException so no `except Exception` in a parser swallows it."""


@contextmanager
def _time_limit(what: str):
    def on_alarm(signum, frame):
        raise Hang(f"{what} took over {ALARM_S} s")

    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, ALARM_S)
    faulthandler.dump_traceback_later(WATCHDOG_S, exit=True)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
        faulthandler.cancel_dump_traceback_later()


def check_parse(tmp_path, suffix: str, data: bytes, kind: str = "") -> str:
    """Parse `data` as a file with `suffix`; assert the contract; return "doc" or "error"."""
    kind = kind or suffix
    TRIED[kind] += 1
    path = tmp_path / f"fuzz-{TRIED[kind]}{suffix}"
    path.write_bytes(data)
    try:
        with _time_limit(f"{kind} input of {len(data)} bytes"):
            try:
                doc = load_document(path)
            except InputError as e:
                msg = str(e)
                assert msg and "\n" not in msg and "\r" not in msg, repr(msg)
                assert path.name in msg, msg  # the message names the file
                OUTCOMES[f"{kind} error"] += 1
                return "error"
            assert doc.text.strip()
            for size in (600, 60):
                chunks = chunk_document(doc.doc_id, doc.text, size=size, overlap=1)
                assert chunks, "a document with text must give chunks"
                for c in chunks:
                    assert doc.text[c.start : c.end] == c.text
                    assert c.text.strip()
                    for s, e in c.sentences:
                        assert c.start <= s < e <= c.end, (s, e, c.start, c.end)
            OUTCOMES[f"{kind} doc"] += 1
            return "doc"
    finally:
        path.unlink(missing_ok=True)


@pytest.fixture(scope="module", autouse=True)
def _report():
    yield
    print(
        "\nfuzz inputs tried:",
        dict(sorted(TRIED.items())),
        "outcomes:",
        dict(sorted(OUTCOMES.items())),
    )


FUZZ = settings(
    # the same inputs on every CI run; explore more with FUZZ_EXAMPLES=5000 FUZZ_RANDOM=1
    max_examples=int(os.environ.get("FUZZ_EXAMPLES", "150")),
    derandomize=not os.environ.get("FUZZ_RANDOM"),
    deadline=None,
    database=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)

# -- text and markdown ------------------------------------------------------------------------
AWKWARD = [
    "\r\n",
    "\r",
    "\n\n",
    "\u2028",
    "\u2029",
    "\x85",
    "\x0b",
    "\x0c",
    "\x1c",
    "\ufeff",
    "\u200b",
    "\u0301",
    "…",
    "“",
    "”",
    "# ",
    "## ",
    "Mr. ",
    "U.S. ",
    "e.g. ",
    "?!",
    "...",
    "\t",
    " ",
    "😀",
    "\U0010ffff",
    "\ud7ff",
    "Ω",
    "İ",
    "ß",
    "ﬃ",
    "\u0000",
]
texty = st.lists(
    st.one_of(
        st.sampled_from(AWKWARD), st.text(max_size=40), st.text(alphabet="abc. ?!\n", max_size=200)
    ),
    max_size=60,
).map("".join)


@pytest.mark.parametrize("suffix", [".txt", ".md"])
@FUZZ
@given(
    data=st.one_of(
        st.binary(max_size=3000), texty.map(lambda s: s.encode("utf-8", "surrogatepass"))
    )
)
def test_random_text_files(tmp_path, suffix, data):
    check_parse(tmp_path, suffix, data)


@FUZZ
@given(text=texty, encoding=st.sampled_from(["utf-16", "latin-1", "cp1252", "utf-8-sig"]))
def test_text_in_other_encodings(tmp_path, text, encoding):
    data = text.encode(encoding, "replace")
    check_parse(tmp_path, ".txt", data, kind=".txt/" + encoding)


def test_long_lines_and_one_huge_sentence(tmp_path):
    """Sizes past the chunker's limits: a 50 kB line with no space, a 200 kB line of words,
    thousands of short lines (pysbd runs once per line: ~0.2 ms each, so keep this modest)."""
    for data in (
        b"x" * 50_000,
        (b"word " * 40_000),
        b"A.\n" * 3000,
        b"#\n" * 5000,
        ("é" * 30_000).encode(),
        b"Title\n" + b"No stop here " * 5000,
    ):
        check_parse(tmp_path, ".txt", data, kind=".txt/long")


# -- html -------------------------------------------------------------------------------------
TAGS = [
    "<html>",
    "</html>",
    "<head>",
    "</head>",
    "<title>",
    "</title>",
    "<body>",
    "<p>",
    "</p>",
    "<script>",
    "</script>",
    "<style>",
    "</style>",
    "<!--",
    "-->",
    "<![CDATA[",
    "]]>",
    "<div",
    ">",
    "<",
    "</",
    "<br/>",
    "&amp;",
    "&#0;",
    "&#x110000;",
    "&#99999999999;",
    "&nbsp;",
    "<template>",
    "<noscript>",
    "<h1>",
    "</h1>",
    "<a href='",
    "'>",
    "<?xml ?>",
    "<!DOCTYPE",
    "<table><tr><td>",
    "<svg><foreignObject>",
    "<math>",
    "\x00",
    "<p/>",
    '="',
    "<b><i>",
]
html = st.lists(st.one_of(st.sampled_from(TAGS), st.text(max_size=30)), max_size=80).map("".join)


@pytest.mark.parametrize("suffix", [".html", ".htm"])
@FUZZ
@given(
    data=st.one_of(html.map(lambda s: s.encode("utf-8", "surrogatepass")), st.binary(max_size=2000))
)
def test_random_html(tmp_path, suffix, data):
    check_parse(tmp_path, suffix, data)


def test_deeply_nested_and_unclosed_html(tmp_path):
    cases = [
        b"<div>" * 20_000 + b"deep text." + b"</div>" * 20_000,
        b"<div>" * 20_000 + b"unclosed text.",
        b"<?xml version='1.0'?><html xmlns='http://www.w3.org/1999/xhtml'><p>XHTML.</p></html>",
        b"https://example.com/article.html",
        b"<b><i>" * 20_000 + b"x",
        b"<title>" + b"t" * 100_000 + b"</title><p>Body.</p>",
        b"<script>" + b"<p>hidden</p>" * 1000,  # never closed: nothing visible
        b"<!--" + b"a" * 100_000,
        b"<table>" + b"<tr><td>cell." * 5_000,
        b"<p>" + b"&amp;" * 50_000 + b"</p>",
    ]
    for data in cases:
        check_parse(tmp_path, ".html", data, kind=".html/nested")


# -- pdf --------------------------------------------------------------------------------------
GOOD_PDF = _tiny_pdf("The delegation arrived on Tuesday.")


def _stream(data: bytes, extra: bytes = b"") -> bytes:
    return b"<< /Length %d %s>>\nstream\n" % (len(data), extra) + data + b"\nendstream"


CATALOG = b"<< /Type /Catalog /Pages 2 0 R >>"
PAGES = b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>"
PAGE = (
    b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
    b"/Resources << /Font << /F1 5 0 R >> /XObject << /X1 6 0 R >> >> >>"
)
TEXT = _stream(b"BT /F1 12 Tf 72 720 Td (The summit lasted three hours.) Tj ET")
FONT = b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"
FORM = _stream(b"BT /F1 9 Tf (Form text.) Tj ET", b"/Type /XObject /Subtype /Form /BBox [0 0 9 9] ")
BASE = [CATALOG, PAGES, PAGE, TEXT, FONT, FORM]


def _with(i: int, body: bytes, objs=BASE) -> list[bytes]:
    return [body if n == i else o for n, o in enumerate(objs)]


ENCRYPT_RC4 = (
    b"<< /Filter /Standard /V 2 /R 3 /O ("
    + b"x" * 32
    + b") /U ("
    + b"x" * 32
    + b") /P -4 /Length 128 >>"
)
ENCRYPT_AES = (
    b"<< /Filter /Standard /V 5 /R 6 /O ("
    + b"x" * 48
    + b") /U ("
    + b"x" * 48
    + b") /OE ("
    + b"x" * 32
    + b") /UE ("
    + b"x" * 32
    + b") /Perms ("
    + b"x" * 16
    + b") /P -4 /Length 256 /CF << /StdCF << /CFM /AESV3 >> >> /StmF /StdCF /StrF /StdCF >>"
)
FILE_ID = b"/ID [<00112233445566778899aabbccddeeff> <00112233445566778899aabbccddeeff>] "
MANY = 3000

BROKEN_PDFS = {
    "empty-after-header": b"%PDF-1.7\n",
    "truncated-half": GOOD_PDF[: len(GOOD_PDF) // 2],
    "truncated-before-eof": GOOD_PDF[:-8],
    "truncated-in-stream": GOOD_PDF[: GOOD_PDF.index(b"stream") + 12],
    "garbage-after-header": b"%PDF-1.7\n" + bytes(range(256)) * 40,
    "garbage-after-eof": GOOD_PDF + bytes(range(256)) * 40,
    "no-xref": _pdf(BASE, xref=False),
    "xref-points-nowhere": GOOD_PDF.replace(b"startxref\n", b"startxref\n99999"),
    "huge-page-count": _pdf(_with(1, b"<< /Type /Pages /Kids [3 0 R] /Count 999999999 >>")),
    "huge-size": _pdf(BASE, size=10**12),
    "huge-xref-section": (
        b"%PDF-1.4\n1 0 obj\n" + CATALOG + b"\nendobj\nxref\n0 999999999\n"
        b"0000000000 65535 f \ntrailer\n<< /Size 999999999 /Root 1 0 R >>\n"
        b"startxref\n59\n%%EOF\n"
    ),
    "huge-objstm": _pdf(
        BASE
        + [b"<< /Type /ObjStm /N 100000000 /First 10 /Length 10 >>\nstream\n1 0 2 0 3 \nendstream"]
    ),
    "many-pages-one-object": _pdf(
        _with(1, b"<< /Type /Pages /Kids [" + b" 3 0 R" * MANY + b"] /Count %d >>" % MANY)
    ),
    "kids-self-loop": _pdf(_with(1, b"<< /Type /Pages /Kids [2 0 R 3 0 R] /Count 2 >>")),
    "kids-mutual-loop": _pdf(
        _with(1, b"<< /Type /Pages /Kids [7 0 R] /Count 1 >>")
        + [b"<< /Type /Pages /Kids [2 0 R] /Count 1 /Parent 2 0 R >>"]
    ),
    "parent-loop": _pdf(_with(2, PAGE.replace(b"/Parent 2 0 R", b"/Parent 3 0 R"))),
    "nested-arrays": _pdf(
        _with(0, b"<< /Type /Catalog /Pages 2 0 R /X " + b"[" * 100_000 + b"]" * 100_000 + b" >>")
    ),
    "nested-dicts": _pdf(
        _with(
            0, b"<< /Type /Catalog /Pages 2 0 R /X " + b"<< /A " * 50_000 + b">>" * 50_000 + b" >>"
        )
    ),
    "unbalanced-dicts": _pdf(_with(0, b"<< /Type /Catalog /Pages 2 0 R /X " + b"<< /A " * 5000)),
    "nested-pages-tree": _pdf(
        [CATALOG]
        + [b"<< /Type /Pages /Kids [%d 0 R] /Count 1 >>" % (i + 2) for i in range(1, 3000)]
        + [PAGE.replace(b"/Parent 2 0 R", b"").replace(b"4 0 R", b"3002 0 R"), TEXT]
    ),
    "form-xobject-recursion": _pdf(
        [
            CATALOG,
            PAGES,
            PAGE,
            _stream(b"/X1 Do BT /F1 9 Tf (Hi.) Tj ET"),
            FONT,
            _stream(
                b"/X1 Do",
                b"/Type /XObject /Subtype /Form /BBox [0 0 9 9] "
                b"/Resources << /XObject << /X1 6 0 R >> >> ",
            ),
        ]
    ),
    "contents-array-self-ref": _pdf(
        _with(2, PAGE.replace(b"/Contents 4 0 R", b"/Contents 7 0 R")) + [b"[7 0 R 4 0 R]"]
    ),
    "length-self-ref": _pdf(_with(3, b"<< /Length 4 0 R >>\nstream\nBT ET\nendstream")),
    "negative-length": _pdf(_with(3, b"<< /Length -5 >>\nstream\nBT ET\nendstream")),
    "length-past-eof": _pdf(_with(3, b"<< /Length 99999999 >>\nstream\nBT ET\nendstream")),
    "bad-flate": _pdf(_with(3, _stream(b"0123456789", b"/Filter /FlateDecode "))),
    "flate-bomb": _pdf(
        _with(
            3,
            _stream(
                zlib.compress(b"BT (" + b"a" * 200_000_000 + b") Tj ET", 9),
                b"/Filter /FlateDecode ",
            ),
        )
    ),
    "unknown-filter": _pdf(_with(3, _stream(b"xx", b"/Filter /NoSuchDecode "))),
    "filter-chain": _pdf(
        _with(
            3,
            _stream(
                b"xx",
                b"/Filter [/ASCIIHexDecode /ASCII85Decode /LZWDecode "
                b"/RunLengthDecode /FlateDecode] ",
            ),
        )
    ),
    "bad-font-widths": _pdf(
        _with(
            4,
            b"<< /Type /Font /Subtype /TrueType /BaseFont /X /FirstChar 99999999 "
            b"/Widths [1 2 3] /ToUnicode 7 0 R >>",
        )
        + [_stream(b"garbage cmap")]
    ),
    "huge-text-operator": _pdf(
        _with(3, _stream(b"BT /F1 12 Tf (" + b"A" * 2_000_000 + b") Tj ET"))
    ),
    "root-not-a-dict": _pdf(_with(0, b"42")),
    "no-pages": _pdf([b"<< /Type /Catalog >>"]),
    "image-only": _pdf(_with(3, _stream(b"q 10 0 0 10 0 0 cm /X1 Do Q"))),
    "encrypted-rc4": _pdf(BASE + [ENCRYPT_RC4], trailer=b"/Encrypt 7 0 R " + FILE_ID),
    "encrypted-aes": _pdf(BASE + [ENCRYPT_AES], trailer=b"/Encrypt 7 0 R " + FILE_ID),
    "not-a-pdf": b"PK\x03\x04 this is a zip",
    "html-named-pdf": b"<html><body>Hello.</body></html>",
    "utf16-bom": b"\xff\xfe%\x00P\x00D\x00F\x00",
}


@pytest.mark.parametrize("name", list(BROKEN_PDFS))
def test_hand_made_broken_pdfs(tmp_path, name):
    check_parse(tmp_path, ".pdf", BROKEN_PDFS[name], kind=".pdf/hand-made")


def test_a_valid_pdf_still_reads(tmp_path):
    assert check_parse(tmp_path, ".pdf", GOOD_PDF, kind=".pdf/good") == "doc"
    assert check_parse(tmp_path, ".pdf", _pdf(BASE), kind=".pdf/good") == "doc"


@st.composite
def mutated_pdf(draw):
    """A valid PDF with a few bytes flipped, cut, duplicated or inserted."""
    data = bytearray(draw(st.sampled_from([GOOD_PDF, _pdf(BASE)])))
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["flip", "cut", "insert", "dup", "digit"]))
        i = draw(st.integers(0, max(0, len(data) - 1)))
        if op == "flip":
            data[i] ^= draw(st.integers(1, 255))
        elif op == "cut":
            del data[i : i + draw(st.integers(1, 200))]
        elif op == "insert":
            data[i:i] = draw(st.binary(min_size=1, max_size=50))
        elif op == "dup":
            j = draw(st.integers(i, min(len(data), i + 300)))
            data[i:i] = data[i:j] * draw(st.integers(1, 50))
        else:  # change a number: counts, lengths and offsets are where parsers trust input
            digits = [k for k, b in enumerate(data) if 48 <= b <= 57]
            if digits:
                k = draw(st.sampled_from(digits))
                data[k : k + 1] = draw(st.sampled_from([b"0", b"9", b"99999999", b"-1", b"R"]))
    return bytes(data)


@FUZZ
@given(data=st.one_of(mutated_pdf(), st.binary(max_size=2000).map(lambda b: b"%PDF-1.4\n" + b)))
def test_mutated_and_random_pdfs(tmp_path, data):
    check_parse(tmp_path, ".pdf", data, kind=".pdf/mutated")


def test_the_watchdog_is_armed():
    """The per-example limit is real: a loop in Python is stopped by the alarm."""
    with pytest.raises(Hang):
        with _time_limit("a deliberate loop"):
            signal.setitimer(signal.ITIMER_REAL, 0.2)
            while True:
                sys.getrecursionlimit()


# A small file that asks for hours of work: one heavy stream drawn again and again.
HEAVY_FORM = _stream(
    b"BT /F1 9 Tf " + b"(a) Tj " * 20_000 + b"ET",
    b"/Type /XObject /Subtype /Form /BBox [0 0 9 9] /Resources << /Font << /F1 5 0 R >> >> ",
)
EXPENSIVE_PDFS = {
    "form-drawn-5000-times": _pdf(_with(5, HEAVY_FORM, _with(3, _stream(b"/X1 Do " * 5000)))),
    "heavy-page-90000-times": _pdf(
        _with(
            3,
            _stream(b"BT /F1 12 Tf " + b"(a) Tj " * 20_000 + b"ET"),
            _with(1, b"<< /Type /Pages /Kids [" + b" 3 0 R" * 90_000 + b"] /Count 90000 >>"),
        )
    ),
}


@pytest.mark.parametrize("name", list(EXPENSIVE_PDFS))
def test_a_pdf_that_asks_for_hours_of_work_is_refused(tmp_path, monkeypatch, name):
    """Without the time limit in rag.reading.ingest these take hours (pypdf re-reads the stream each
    time it is drawn); with it, a one-line error after MAX_PDF_SECONDS (here 1 s)."""
    import rag.reading.ingest

    monkeypatch.setattr(rag.reading.ingest, "MAX_PDF_SECONDS", 1)
    path = tmp_path / f"{name}.pdf"
    path.write_bytes(EXPENSIVE_PDFS[name])
    TRIED[".pdf/expensive"] += 1
    with _time_limit(name), pytest.raises(InputError, match=r"took over 1 s .*convert it to text"):
        load_document(path)


def test_the_pdf_time_limit_message(tmp_path, monkeypatch):
    import rag.reading.ingest

    monkeypatch.setattr(rag.reading.ingest, "MAX_PDF_SECONDS", -1)
    (tmp_path / "brief.pdf").write_bytes(GOOD_PDF)
    with pytest.raises(InputError) as err:
        load_document(tmp_path / "brief.pdf")
    assert str(err.value) == (
        "brief.pdf: reading this PDF took over -1 s (damaged or too complex); "
        "convert it to text and index that"
    )


@pytest.mark.parametrize(
    "name,message",
    [
        ("encrypted-rc4", "the PDF is password-protected; save an unprotected copy"),
        (
            "encrypted-aes",
            "the PDF is encrypted (AES); `pip install cryptography` or save an unencrypted copy",
        ),
        ("flate-bomb", "not a readable PDF (LimitReachedError); re-save it"),
    ],
)
def test_pdf_errors_name_the_fix(tmp_path, name, message):
    (tmp_path / "x.pdf").write_bytes(BROKEN_PDFS[name])
    with pytest.raises(InputError, match=re.escape(f"x.pdf: {message}")):
        load_document(tmp_path / "x.pdf")
