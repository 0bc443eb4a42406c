"""The UI's pure parts: HTML rendering, source links, upload names. No models, no server."""

import dataclasses
import re
from pathlib import Path

import pytest

from rag import Answer, Citation, InputError
from ui import render
from ui.app import bind_warning, is_loopback, parse_auth
from ui.service import safe_upload_name, upload_destination

TEXT = 'Intro line.\n\nMacron met Trump <at> the "White House" & spoke. Then he left.\n'
QUOTE = 'Macron met Trump <at> the "White House" & spoke.'
START = TEXT.index(QUOTE)
CITE = Citation(
    1, "doc-1", "A <Title>", "seeds/doc-1.txt", START, START + len(QUOTE), QUOTE, 1.2345
)


def answer(mode="generate", text="He met Trump. [1]", citations=(CITE,), **kw) -> Answer:
    kw.setdefault("outcome", "not_in_documents" if mode == "abstained" else "answer")
    return Answer(
        "Where did he meet Trump?",
        text,
        mode,
        citations,
        kw.pop("retrieval_query", "Where did he meet Trump?"),
        {"total_ms": 1234.0},
        **kw,
    )


def test_article_view_marks_exactly_the_cited_offsets_and_escapes_around_them():
    html = render.article_html("doc-1", "A <Title>", "seeds/doc-1.txt", TEXT, CITE.start, CITE.end)
    before, marked, after = re.match(
        r"(?s).*?<div class=\"rag-article\"[^>]*>(.*)<mark[^>]*>(.*)</mark>(.*)</div></div>$", html
    ).groups()
    from html import unescape

    assert unescape(marked) == QUOTE
    assert unescape(before) == TEXT[: CITE.start] and unescape(after) == TEXT[CITE.end :]
    assert "<at>" not in html and "&lt;at&gt;" in html
    assert "A &lt;Title&gt;" in html


def test_article_view_uses_offsets_not_a_search():
    text = "Repeat. Repeat. Repeat."
    second = text.index("Repeat.", 1)
    html = render.article_html("d", "t", "s", text, second, second + 7)
    assert html.split('<div class="rag-article" id="rag-article">')[1].startswith("Repeat. <mark")


def test_article_view_refuses_a_span_outside_the_text():
    with pytest.raises(ValueError):
        render.article_html("d", "t", "s", "short", 2, 99)


def test_answer_links_each_marker_to_its_span_and_lists_the_source():
    html = render.answer_html(answer())
    link = render.source_ref(CITE)
    assert f'<a class="rag-cite" href="{link}"' in html and ">[1]</a>" in html
    assert f'<a class="rag-source" href="{link}"' in html
    assert (
        "A &lt;Title&gt;" in html and "score" not in html
    )  # the rule score means nothing to a reader
    assert "Macron met Trump &lt;at&gt; the &quot;White House&quot; &amp; spoke." in html
    assert render.parse_ref(link) == render.Ref("doc-1", CITE.start, CITE.end, render.digest(QUOTE))


@pytest.mark.parametrize(
    "mode,label",
    [
        ("generate", "checked"),
        ("extractive", "quoted from the sources"),
        ("abstained", "the documents don&#x27;t say"),
    ],
)
def test_each_answer_carries_a_badge_for_its_path(mode, label):
    cites = () if mode == "abstained" else (CITE,)
    html = render.answer_html(answer(mode, citations=cites, note="because"))
    assert f'rag-badge-{mode}"' in html and f">{label}</span>" in html


def test_a_follow_up_shows_the_query_used_for_retrieval():
    plain = render.answer_html(answer())
    assert "rag-query" not in plain
    follow = render.answer_html(
        answer(retrieval_query="Did Macron meet Trump? Where did he meet Trump?")
    )
    assert "searched for <q>Did Macron meet Trump? Where did he meet Trump?</q>" in follow


def test_model_text_is_escaped_everywhere():
    evil = '<img src=x onerror="alert(1)"> [1]'
    for html in (
        render.answer_html(answer(text=evil)),
        render.answer_html(answer(text=evil, final=False)),
        render.user_html(evil),
        render.error_html(evil),
    ):
        assert "<img" not in html and "&lt;img" in html


def test_unknown_markers_stay_plain_text():
    html = render.answer_text_html("True. [1] Also [7].", [CITE])
    assert html.count("<a ") == 1 and "[7]" in html


@pytest.mark.parametrize("bad", ["", "#rag-source/", "#rag-source/doc/x/3", "doc/1", "a/b/c/d/e"])
def test_malformed_source_links_are_refused_with_a_sentence(bad):
    with pytest.raises(InputError, match="malformed"):
        render.parse_ref(bad)


def test_doc_ids_with_odd_characters_survive_the_link():
    c = Citation(1, "a b/c", "t", "s", 0, 1, "x")
    assert render.parse_ref(render.source_ref(c)).doc_id == "a b/c"


def test_document_list_shows_title_file_and_chunks():
    rows = [
        render.DocRow("a", "Alpha <1>", "seeds/a.txt", 12),
        render.DocRow("b", "Beta", "index/uploads/b.md", 1, uploaded=True),
    ]
    html = render.documents_html(rows)
    assert "Alpha &lt;1&gt;" in html and "seeds/a.txt" in html and ">12</td>" in html
    assert "uploaded" in html and "2 documents, 13 chunks" in html
    assert "upload one" in render.documents_html([])


# -- upload names --------------------------------------------------------------------------
@pytest.mark.parametrize(
    "name,safe",
    [
        ("../../x.txt", "x.txt"),
        ("..\\..\\evil.md", "evil.md"),
        ("/etc/cron.d/job.html", "job.html"),
        (".hidden.txt", "hidden.txt"),
        ("My Report (final).PDF", "My-Report-final.pdf"),
        ("..txt", "document.txt"),
        ("naïve café.md", "naïve-café.md"),
        ("a\x00b\n.txt", "a-b.txt"),
    ],
)
def test_upload_names_are_plain_files(name, safe):
    assert safe_upload_name(name) == safe


@pytest.mark.parametrize("name", ["../../x", "run.exe", "notes", "archive.tar.gz", ""])
def test_unsupported_upload_names_are_refused_with_the_fix(name):
    with pytest.raises(InputError, match="unsupported file type.*upload one of .txt"):
        safe_upload_name(name)


def test_upload_destination_never_leaves_the_folder(tmp_path):
    folder = tmp_path / "uploads"
    for name in ["../../x.txt", "../uploads/../../y.md", "/abs/z.html"]:
        dest = upload_destination(folder, name)
        assert dest.resolve().parent == folder.resolve()


# -- launch options ------------------------------------------------------------------------
def test_only_non_loopback_hosts_get_a_warning():
    assert is_loopback("127.0.0.1") and is_loopback("localhost") and is_loopback("::1")
    assert bind_warning("127.0.0.1", 7860, False) == ""
    warning = bind_warning("0.0.0.0", 7860, False)
    assert warning.startswith("warning: binding 0.0.0.0, not loopback") and "--auth" in warning
    assert "--auth" not in bind_warning("192.168.1.5", 7860, True)


def test_auth_is_user_colon_password():
    assert parse_auth(None) is None
    assert parse_auth("ann:s3:cret") == ("ann", "s3:cret")
    for bad in ("ann", ":pw", "ann:"):
        with pytest.raises(InputError, match="USER:PASSWORD"):
            parse_auth(bad)


def test_ui_modules_stay_small():
    for p in Path(render.__file__).parent.glob("*.py"):
        assert len(p.read_text().splitlines()) < 500, p


def test_a_quote_being_rewritten_says_so_apart_from_the_answer():
    html = render.answer_html(answer(mode="extractive", final=False, note="quoted; rewriting"))
    assert 'class="rag-rewriting" role="status"' in html and "pass the check" in html
    assert "Why:" not in html  # the reason is for the final answer
    assert "rag-rewriting" not in render.answer_html(answer(mode="extractive"))


@pytest.mark.parametrize(
    "mode,confidence,words",
    [
        ("extractive", 0.91, "very likely right (91%)"),
        ("extractive", 0.45, "unsure (45%)"),
        ("extractive", 0.1, "doubtful: check the source (10%)"),
        ("abstained", 0.85, "likely not in the documents (85%)"),
        ("abstained", 0.3, "unsure: the documents may say it in other words (30%)"),
    ],
)
def test_the_confidence_is_shown_in_words(mode, confidence, words):
    a = dataclasses.replace(answer(mode=mode), confidence=confidence)
    assert 'class="rag-confidence"' in render.answer_html(a) and words in render.answer_html(a)


def test_a_passage_the_engine_is_not_sure_of_is_marked_so_with_its_reason():
    a = answer(
        mode="extractive",
        outcome="not_sure",
        confidence=0.41,
        why="This is the closest passage found; it may not answer the question.",
    )
    html = render.answer_html(a)
    assert 'rag-badge-not-sure"' in html and ">not sure</span>" in html
    assert "possibly not the answer (41%)" in html
    assert "Why: This is the closest passage found; it may not answer the question." in html
    assert "rag-badge-extractive" not in html


def test_the_why_line_is_the_plain_reason_not_the_figures():
    a = answer(
        mode="extractive",
        confidence=0.8,
        why="The reader model judged that this passage answers the question.",
        note="the reader: P(yes) 0.91; P(right) 0.80",
    )
    html = render.answer_html(a)
    assert "Why: The reader model judged that this passage answers the question." in html
    assert "P(yes)" not in html and "0.91" not in html


def test_no_confidence_is_shown_while_the_reader_checks():
    a = dataclasses.replace(answer(), confidence=0.9, final=False, pending="reader")
    html = render.answer_html(a)
    assert "rag-confidence" not in html and "Checking the sources" in html
    assert "rag-confidence" not in render.answer_html(
        dataclasses.replace(a, confidence=None, final=True, pending="")
    )


def test_a_passage_more_likely_right_than_not_is_never_called_possibly_not_the_answer():
    for p, words in ((0.49, "possibly not the answer"), (0.55, "probably the answer")):
        a = answer(mode="extractive", outcome="not_sure", confidence=p, why="")
        assert words in render.confidence_words(a)
    assert "possibly not" not in render.confidence_words(
        answer(mode="extractive", outcome="not_sure", confidence=0.7, why="")
    )
