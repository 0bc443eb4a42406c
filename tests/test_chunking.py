from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rag.reading.chunking import chunk_document, split_sentences
from rag.reading.ingest import load_document

from .conftest import SEEDS, file_text


@pytest.mark.parametrize("path", sorted(SEEDS.glob("*.txt")), ids=lambda p: p.name)
@pytest.mark.parametrize("size,overlap", [(600, 1), (200, 0), (1200, 2)])
def test_every_chunk_and_sentence_is_the_file_text_at_its_offsets(path, size, overlap):
    text = file_text(str(path))
    chunks = chunk_document("d", text, size=size, overlap=overlap)
    assert chunks
    for c in chunks:
        assert text[c.start : c.end] == c.text
        assert c.text == c.text.strip()
        for s, e in c.sentences:
            assert c.start <= s < e <= c.end
            assert text[s:e] == text[s:e].strip()


def test_every_sentence_of_the_article_is_in_some_chunk():
    text = file_text(str(SEEDS / "trump-macron-split-on-trusting-putin.txt"))
    body = [(s.start, s.end) for s in split_sentences(text) if not s.heading]
    chunked = {se for c in chunk_document("d", text, 300, 0) for se in c.sentences}
    assert set(body) <= chunked


def test_headings_are_kept_and_quoted_sentences_split_sensibly():
    text = file_text(str(SEEDS / "trump-macron-split-on-trusting-putin.txt"))
    chunks = chunk_document("d", text, 600, 1)
    headings = {c.heading for c in chunks}
    assert "Diverging Views on Putin’s Credibility" in headings
    assert "Human Toll and Global Repercussions" in headings
    toll = [c for c in chunks if c.heading == "Human Toll and Global Repercussions"]
    sentences = [text[s:e] for c in toll for s, e in c.sentences]
    assert (
        "U.N. reports estimate over 10,000 civilian deaths and 14 million displaced Ukrainians."
        in sentences
    )


def test_overlap_shares_sentences_between_neighbours():
    text = file_text(str(SEEDS / "macron-to-press-trump-on-putin.txt"))
    chunks = [c for c in chunk_document("d", text, 400, 1) if c.heading == ""]
    pairs = [(a, b) for a, b in zip(chunks, chunks[1:], strict=False) if len(a.sentences) > 1]
    assert pairs
    for a, b in pairs:
        assert a.sentences[-1] == b.sentences[0]


def test_titles_come_from_the_first_line_or_the_file_name():
    a = load_document(SEEDS / "trump-macron-split-on-trusting-putin.txt")
    assert a.title.startswith("Trump and Macron Split on Trusting Putin")
    b = load_document(SEEDS / "macron-to-press-trump-on-putin.txt")
    assert b.title == "Macron to Press Trump on Putin"


def test_short_lines_without_a_sentence_after_them_are_content_not_headings():
    text = "Shopping list\nApples\nPears\n"
    chunks = chunk_document("d", text, 600, 0)
    assert [text[s:e] for c in chunks for s, e in c.sentences][-2:] == ["Apples", "Pears"]


def test_crlf_and_overlong_sentences_keep_exact_offsets():
    text = "Intro line here.\r\n\r\n" + ("word " * 2000).strip() + ".\r\nEnd."
    chunks = chunk_document("d", text, 200, 1)
    for c in chunks:
        assert text[c.start : c.end] == c.text
        assert len(c.text) <= 1000


@settings(max_examples=300, deadline=None)
@given(
    text=st.text(min_size=0, max_size=3000),
    size=st.integers(min_value=50, max_value=2000),
    overlap=st.integers(min_value=0, max_value=3),
)
def test_offsets_hold_for_any_text(text, size, overlap):
    for c in chunk_document("d", text, size, overlap):
        assert text[c.start : c.end] == c.text
        assert c.text.strip()
        for s, e in c.sentences:
            assert c.start <= s < e <= c.end


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.sampled_from(
            [
                "Mr. Smith went to Washington.",
                "He said “yes.”",
                "U.S. aid stalled.",
                "\n",
                "\n\n",
                "A Heading Line",
                "# Markdown",
                "Ça va? Oui!",
                "3.5 million",
                " ",
                "…",
                "e.g. this",
                "\u200b",
                "😀 emoji.",
                "\r\n",
                "\t",
            ]
        ),
        max_size=60,
    )
)
def test_offsets_hold_for_article_like_text(parts):
    text = "".join(parts)
    for c in chunk_document("d", text, 120, 1):
        assert text[c.start : c.end] == c.text


def test_markdown_headings_are_headings(tmp_path: Path):
    text = "# Report\n\n## Budget\n\nThe budget grew by 3 percent. It was approved.\n"
    chunks = chunk_document("d", text, 600, 0)
    assert chunks[0].heading == "Budget"
    assert chunks[0].text.startswith("## Budget")
