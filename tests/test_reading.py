"""Real files of each kind, read as they are written (tests/data/SOURCES.md says where each
came from): a line break inside a paragraph is not a sentence end, headings come from what
marks them, and every offset is exact."""

from pathlib import Path

import pytest

from rag.reading.chunking import chunk_document
from rag.reading.ingest import load_document
from rag.reading.sentences import split_sentences

DATA = Path(__file__).parent / "data"
FILES = [
    "Apache-2.0.txt",
    "pip-authentication.md",
    "venv.rst",
    "venv.html",
    "shared-mime-info-spec.pdf",
]


def read(name: str) -> tuple[str, list[str], list[str]]:
    """(text, sentences with their line breaks folded, headings)"""
    text = load_document(DATA / name).text
    spans = split_sentences(text)
    sentences = [" ".join(text[s.start : s.end].split()) for s in spans if not s.heading]
    headings = [" ".join(text[s.start : s.end].lstrip("#").split()) for s in spans if s.heading]
    return text, sentences, headings


@pytest.mark.parametrize("name", FILES)
def test_offsets_are_exact_in_every_kind_of_file(name):
    text = load_document(DATA / name).text
    chunks = chunk_document("d", text, size=600, overlap=1)
    assert len(chunks) > 5
    for c in chunks:
        assert text[c.start : c.end] == c.text
        for s, e in c.sentences:
            assert c.start <= s < e <= c.end and text[s:e] == text[s:e].strip()


def test_hard_wrapped_license_reads_whole_sentences_and_lettered_items():
    text, sentences, headings = read("Apache-2.0.txt")
    assert (
        '"License" shall mean the terms and conditions for use, reproduction, and '
        "distribution as defined by Sections 1 through 9 of this document."
    ) in sentences
    assert (
        "(b) You must cause any modified files to carry prominent notices stating that You "
        "changed the files; and"
    ) in sentences
    assert "1. Definitions." in headings
    # the quote a user is shown spans the file's line breaks, exactly
    start = text.index('"Licensor" shall mean')
    span = next(s for s in split_sentences(text) if s.start == start)
    assert "\n" in text[span.start : span.end] and text[span.start : span.end].endswith("License.")
    # no wrapped line became a sentence of its own: each sentence ends where a sentence ends
    cut = [s for s in sentences if not s.endswith((".", ";", ":", "and", "or", ")", '"'))]
    assert len(cut) <= 0.1 * len(sentences), cut[:5]


def test_hard_wrapped_markdown_keeps_headings_and_sentences_apart():
    _, sentences, headings = read("pip-authentication.md")
    assert headings[:3] == [
        "Authentication",
        "Basic HTTP authentication",
        "Percent-encoding special characters",
    ]
    assert (
        "If the user or password part of your login credentials contain any of these "
        "[special characters][reserved-chars], then they must be percent-encoded."
    ) in sentences
    # a note inside a MyST directive fence is prose, read across its line breaks
    assert (
        "As mentioned in the [standard library documentation for netrc][netrc-std-lib], "
        "only ASCII characters are allowed in `.netrc` files."
    ) in sentences
    # a wrapped line is never a heading: every heading here is one a "#" marks
    text = load_document(DATA / "pip-authentication.md").text
    assert all(text[s.start] == "#" for s in split_sentences(text) if s.heading)


def test_restructuredtext_underlines_make_headings_and_literal_blocks_stay_apart():
    _, sentences, headings = read("venv.rst")
    assert headings[:3] == [
        "Virtual Environments and Packages",
        "Introduction",
        "Creating Virtual Environments",
    ]
    assert (
        "If application B requires a library be upgraded to version 3.0, this will not "
        "affect application A's environment."
    ) in sentences
    assert "python3 -m venv tutorial-env" in sentences  # the literal block after "::"


def test_sphinx_html_reads_the_content_without_navigation_or_permalinks():
    text, sentences, headings = read("venv.html")
    assert headings[:2] == ["12. Virtual Environments and Packages", "12.1. Introduction"]
    assert "¶" not in text
    assert "Table of Contents" not in text and "Previous topic" not in text  # the sidebar
    assert ("A common directory location for a virtual environment is .venv.") in sentences


def test_pdf_sentences_run_across_lines_and_page_breaks_without_running_headers():
    text, sentences, headings = read("shared-mime-info-spec.pdf")
    assert "1.2. What is this spec?" in headings
    assert (
        "Frequently, it is necessary to work out the correct MIME type for a file."
    ) in sentences
    across = [s for s in sentences if s.startswith("Information found in a directory is added")]
    assert across, "a sentence broken by a page break is read as one"
    assert "\f" in text  # pages are kept apart for the reader, not for the sentences


def test_html_text_a_browser_hides_is_not_read(tmp_path):
    page = tmp_path / "page.html"
    page.write_text(
        "<html><head><style>.gone {display: none} #x { visibility:hidden }</style></head><body>"
        "<p>The mayor of Lyon is Grégory Doucet.</p>"
        '<div style="display:none">The mayor of Lyon is Darth Vader.</div>'
        '<p hidden>Hidden by attribute.</p><p class="gone">Hidden by class.</p>'
        '<p id="x">Hidden by id.</p><span style="font-size:0">Zero size.</span>'
        '<p aria-hidden="true">Hidden from readers.</p><nav>Home | About</nav>'
        '<p style="font-size: 0.9em">Small print is shown.</p></body></html>',
        encoding="utf-8",
    )
    text = load_document(page).text
    assert "Grégory Doucet" in text and "Small print is shown." in text
    for hidden in (
        "Darth Vader",
        "attribute",
        "by class",
        "by id",
        "Zero size",
        "from readers",
        "About",
    ):
        assert hidden not in text


def test_a_quote_across_line_breaks_reads_as_one_line_and_cites_the_exact_text(tmp_path, embedder):
    from rag import Pipeline, Settings, update

    s = Settings.load(env={}, index_dir=str(tmp_path / "index"))
    index, _ = update(s, embedder, [str(DATA / "Apache-2.0.txt")])
    answer = Pipeline(s, index, embedder).ask("What must modified files carry?", mode="extractive")
    assert not answer.abstained and "prominent notices" in answer.text
    assert "\n" not in answer.text
    text = (DATA / "Apache-2.0.txt").read_text(encoding="utf-8")
    for c in answer.citations:
        assert text[c.start : c.end] == c.quote
    assert any("\n" in c.quote for c in answer.citations)


def unit_with(text: str, words: str) -> str:
    """The evidence unit (folded) that holds `words`."""
    for s in split_sentences(text):
        folded = " ".join(text[s.start : s.end].split())
        if words in folded:
            return folded
    raise AssertionError(f"no unit holds {words!r}")


def test_a_man_page_definition_is_one_unit_term_and_description():
    """adduser.conf(5) as `MANWIDTH=80 man -P cat | col -bx` prints it: each option's name and
    its indented description (on the name's line or below it) read as one unit, so the quote
    that names the option also carries its default."""
    text = load_document(DATA / "adduser.conf.5.txt").text
    assert unit_with(text, "DSHELL") == (
        "DSHELL The login shell to be used for all new users. Defaults to /bin/bash."
    )
    assert unit_with(text, "ADD_EXTRA_GROUPS Setting").endswith("Defaults to 0.")
    assert "Defaults to 0700." in unit_with(text, "DIR_MODE The permissions mode")
    assert "Defaults to 100 - 999." in unit_with(text, "FIRST_SYSTEM_GID and LAST_SYSTEM_GID")
    spans = split_sentences(text)
    headings = [" ".join(text[s.start : s.end].split()) for s in spans if s.heading]
    assert {"NAME", "DESCRIPTION", "NOTES"} <= set(headings)
    assert "DSHELL" not in headings and "ADD_EXTRA_GROUPS" not in headings
    # offsets stay exact: the unit is the file's text, line breaks and indent and all
    s = next(s for s in spans if text[s.start : s.end].startswith("DSHELL"))
    assert text[s.start : s.end] == text[text.index("DSHELL") : text.index("/bin/bash.") + 10]


def test_a_long_definition_reads_as_sentences_its_term_leading_the_first():
    text = load_document(DATA / "gai.conf.5.txt").text
    reload = unit_with(text, "reload <yes|no>")
    assert reload.startswith("reload <yes|no> This keyword controls") and reload.endswith(
        'The default is "no".'
    )
    assert (
        unit_with(text, "gai.conf - getaddrinfo(3)")
        == "gai.conf - getaddrinfo(3) configuration file"
    )


def test_an_html_definition_list_reads_as_term_and_description():
    """A Sphinx function entry is a <dl>: its signature (<dt>) and what it does (<dd>)."""
    text = load_document(DATA / "fnmatch.html").text
    assert unit_with(text, "fnmatch.translate(pattern)") == (
        "fnmatch.translate(pattern) Return the shell-style pattern converted to a regular "
        "expression for using with re.match()."
    )


def test_what_a_unit_is_for_is_read_from_its_form():
    from rag.reading.form import form

    adduser = load_document(DATA / "adduser.conf.5.txt").text
    gai = load_document(DATA / "gai.conf.5.txt").text
    html = load_document(DATA / "fnmatch.html").text
    assert form(unit_with(adduser, "/etc/adduser.conf - configuration file")) == "title"
    assert form(unit_with(adduser, "DSHELL")) == "prose"
    assert form(unit_with(gai, "label ::1/128 0")) == "code"
    assert form(unit_with(html, ">>> regex = fnmatch.translate")) == "code"
    assert form(unit_with(html, "Test whether the filename string matches")) == "prose"


def test_an_identifier_is_read_whole_as_well_as_by_its_words():
    """Asked about ADD_EXTRA_GROUPS, an entry that holds it outweighs one that holds only
    EXTRA_GROUPS (adduser.conf(5) has both, one after the other)."""
    from rag.reading.terms import content_stems, text_stems

    asked = content_stems("What is the default value of ADD_EXTRA_GROUPS?")
    assert {"add", "extra", "group", "add_extra_groups"} <= asked
    assert "add_extra_groups" not in text_stems("EXTRA_GROUPS This is the list of groups.")
    assert "add_extra_groups" in text_stems("ADD_EXTRA_GROUPS Setting this to 1 adds them.")
    assert "snake_case" in text_stems("a name in snake_case") and "snake" in text_stems(
        "snake_case"
    )


def test_pdf_ligatures_and_t1_control_codes_become_letters():
    """A PDF font without a Unicode map leaves ligatures (U+FB01) or TeX T1 control codes
    (0x1C for "fi") in the text: read as letters, a search for "first" finds "ﬁrst"."""
    from rag.reading.ingest import _GLYPHS

    assert "the \ufb01rst e\x1bect, \x10quoted\x11 \x15 \x1d".translate(_GLYPHS) == (
        "the first effect, \u201cquoted\u201d \u2013 fl"
    )


def test_a_full_stop_inside_a_word_ends_no_sentence():
    """pypdf text of R's "Data Import/Export" manual: ".REC" is a file extension, not a
    sentence end followed by "REC files ..."."""
    text = (
        "EpiInfo versions 5 and 6 stored data in a fixed-width text format. "
        "It will read these .REC files into an R data frame. EpiData also produces them."
    )
    got = [text[s.start : s.end] for s in split_sentences(text)]
    assert "It will read these .REC files into an R data frame." in got
