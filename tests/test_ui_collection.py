"""The UI and the engine's wording hold for any collection, not only the seed articles: served
over a note nobody on the team wrote, no page text is about the seeds, and an abstention reads
as one about the documents indexed."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from rag import Pipeline, Settings, load_index, update
from rag.reading.ingest import load_document
from ui.collection import EXAMPLES_FILE, intro, subject
from ui.service import Service

from .conftest import SEEDS
from .scripted import doubting
from .ui_helpers import free_port, running

# A hard-wrapped note, as someone keeps one in a text editor.
NOTE = """# Country loaf

Feed the starter the evening before, so that it has doubled and smells
sour by the morning. Mix 100 grams of active starter with 350 grams of
water and 500 grams of bread flour, then rest the dough for an hour.

Fold the dough four times, half an hour apart, and let it rise until it
has grown by half. Shape it, and proof it in the fridge overnight.

Bake at 250 degrees in a covered pot for 20 minutes, then uncovered for
another 25 minutes, until the crust is dark.
"""
SEED_WORDS = ("Macron", "Trump", "Putin", "Ukraine", "articles", "news")


@pytest.fixture(scope="module")
def note_settings(tmp_path_factory, embedder):
    root = tmp_path_factory.mktemp("note")
    (root / "docs").mkdir()
    (root / "docs" / "country-loaf.md").write_text(NOTE, encoding="utf-8")
    settings = Settings.load(
        env={}, index_dir=str(root / "index"), port=free_port(), models_dir=str(root / "models")
    )
    update(settings, embedder, [str(root / "docs")])
    return settings


@pytest.fixture(scope="module")
def note_pipeline(note_settings, embedder):
    return Pipeline(note_settings, load_index(note_settings, embedder), embedder)


def test_the_examples_file_names_the_seed_articles_as_they_read_now():
    data = json.loads((SEEDS / EXAMPLES_FILE).read_text(encoding="utf-8"))
    assert data["questions"]
    for name, sha in data["documents"].items():
        assert load_document(SEEDS / name).sha256 == sha, f"{name} changed: update {EXAMPLES_FILE}"


def test_over_the_seeds_the_chat_offers_their_examples(seed_index):
    data = json.loads((SEEDS / EXAMPLES_FILE).read_text(encoding="utf-8"))
    opening = intro(seed_index)
    assert list(opening.examples) == data["questions"]
    assert "Macron to Press Trump on Putin" in opening.placeholder
    assert "pick an example" in opening.placeholder


def test_over_other_documents_nothing_on_the_page_is_about_the_seeds(
    note_settings, note_pipeline, embedder
):
    service = Service(note_settings, embedder, note_pipeline)
    with running(service) as url:
        page = httpx.get(url).text + httpx.get(f"{url}config").text
    for word in SEED_WORDS:
        assert word.lower() not in page.lower(), word
    assert "Ask about “Country loaf”" in page and "pick an example" not in page


def test_examples_need_every_document_they_were_written_for(note_pipeline):
    """An examples file naming a document that is not indexed, or unreadable, offers none."""
    index = note_pipeline.index
    doc = next(iter(index.docs.values())).doc
    examples = {
        "documents": {"country-loaf.md": doc.sha256, "missing.md": "0" * 64},
        "questions": ["How long does the loaf bake?"],
    }
    beside = Path(doc.source).parent / EXAMPLES_FILE
    beside.write_text(json.dumps(examples), encoding="utf-8")
    try:
        assert intro(index).examples == ()
        examples["documents"].pop("missing.md")
        beside.write_text(json.dumps(examples), encoding="utf-8")
        assert intro(index).examples == ("How long does the loaf bake?",)
        beside.write_text("{not json", encoding="utf-8")
        assert intro(index).examples == ()
    finally:
        beside.unlink()


def test_an_abstention_over_a_note_names_the_documents_not_articles(note_pipeline):
    judged = doubting(note_pipeline)  # a reader that finds no passage answers it
    answer = judged.ask("What temperature did Bertinet bake the loaf at?")
    assert answer.abstained
    assert answer.text == "The documents don't say anything about Bertinet."
    assert answer.note.endswith("; not in the documents: Bertinet")


def test_a_named_collection_is_named(note_settings, note_pipeline):
    named = doubting(note_pipeline).ask(
        "What temperature did Bertinet bake the loaf at?", collection="Kitchen notes"
    )
    assert named.text == "The documents in “Kitchen notes” don't say anything about Bertinet."
    opening = intro(note_pipeline.index, "Kitchen notes")
    assert "<h1>Ask Kitchen notes</h1>" in opening.header
    assert opening.prompt == "Ask a question about Kitchen notes…"


def test_a_question_naming_nothing_gets_a_hint_about_the_documents(note_pipeline):
    answer = note_pipeline.ask("What happened?")
    assert answer.abstained and "names nothing to look up" in answer.text
    assert not any(w.lower() in answer.text.lower() for w in SEED_WORDS)


def test_the_placeholder_names_a_few_titles_and_counts_the_rest():
    assert subject(["A"]) == "“A”"
    assert subject(["A", "B"]) == "“A” and “B”"
    assert subject(["A", "B", "C", "D", "E"]) == "“A”, “B”, “C” and 2 more documents"
    assert subject(["x" * 200]).endswith("…”")
