"""Every kind of reason the engine gives ("not in the documents: X", "names or numbers not in
source [1]: 10", ...) is tested against a case where it must not appear: the thing is there,
under another case, a possessive, an accent, or on the next line of a hard-wrapped sentence."""

from __future__ import annotations

import pytest

from rag import Pipeline, Settings, load_index, update
from rag.answering.compose import checked
from rag.answering.query import read
from rag.answering.verify import Checker, coverage
from rag.reading.chunking import split_sentences
from rag.types import Evidence

from .scripted import doubting

# A hard-wrapped note: sentences run across line breaks.
NOTE = """Bakery notes

Mix 100 grams of active starter with 350 grams of
water and 500 grams of bread flour, then rest the dough for an hour.
The bakery on Rue Cler opened on
March 3, 2021, and now sells twelve
loaves a day.

Dr. Okafor, speaking at the Élysée kitchen, said the dough
should rest overnight. You can't skip the second fold,
because the Nato-standard oven runs hot.
"""


def evidence(text: str = NOTE) -> list[Evidence]:
    """Each sentence of `text` as evidence, best first in the note's order."""
    spans = split_sentences(text)
    return [
        Evidence(
            "note", "Bakery notes", "note.md", s.start, s.end, text[s.start : s.end], 1.0 - i / 100
        )
        for i, s in enumerate(spans)
    ]


def sentence_with(words: str) -> Evidence:
    return next(e for e in evidence() if words in e.text)


WATER = read("How much water goes into the dough?")


@pytest.fixture(scope="module")
def checker(embedder):
    return Checker(embedder)


# -- coverage: "not in the documents", "not in the passages found", "give no date", ... -----
@pytest.mark.parametrize(
    "question",
    [
        "What is mixed with 350 grams of water?",  # the number, then the rest on the next line
        "What is added to the 500 grams of bread flour?",  # a number on the wrapped line
        "What did Okafor's colleagues say about the dough?",  # a possessive
        "Why does the NATO-standard oven matter?",  # another case
        "What did Okafor say at the Elysee kitchen?",  # no accent
        "When did the bakery on Rue Cler open?",  # a date on the next line
        "How many loaves does the bakery sell?",  # a count split by a line break
        "How long should the dough rest after mixing?",  # a length of time in minutes or hours
    ],
)
def test_coverage_claims_nothing_missing_when_it_is_there(question):
    cov = coverage(read(question).asking, evidence(), NOTE, best_cosine=0.6, vocabulary=set())
    assert cov.covered, cov.reason
    assert cov.reason == "" and cov.missing == ()


def test_not_in_the_documents_only_when_no_document_has_it():
    question = read("What did Okafor say about Bertinet?").asking
    only_first = evidence()[0].text  # the passages found lack both names
    found_elsewhere = coverage(question, evidence()[:1], only_first, 0.6, {"okafor", "bertinet"})
    assert not found_elsewhere.covered and "not in the documents" not in found_elsewhere.reason
    assert found_elsewhere.reason == "not in the passages found for this question: Okafor, Bertinet"
    assert found_elsewhere.missing == ()  # so the answer names nothing it cannot vouch for

    mixed = coverage(question, evidence()[:1], only_first, 0.6, vocabulary={"okafor"})
    assert mixed.reason == (
        "not in the documents: Bertinet; not in the passages found for this question: Okafor"
    )
    assert mixed.missing == ("Bertinet",)


def test_a_missing_kind_of_answer_names_no_word_that_is_there():
    """ "How many ovens" with no count of ovens: the reason says so; the answer does not claim
    the documents say nothing about ovens, which they mention."""
    cov = coverage(read("How many ovens does the bakery run?").asking, evidence(), NOTE, 0.6, set())
    assert (
        not cov.covered
        and cov.reason == "the best-matching sentences give no number of ovens for this"
    )
    assert cov.missing == ()


def test_no_far_from_the_question_reason_when_a_sentence_is_close():
    cov = coverage(read("What did Okafor say?").asking, evidence(), NOTE, 0.6, set())
    assert "close" not in cov.reason


@pytest.fixture
def note_pipeline(embedder, tmp_path) -> Pipeline:
    """The engine over the bakery note alone, quoting only."""
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "bakery-notes.md").write_text(NOTE, encoding="utf-8")
    settings = Settings.load(env={}, index_dir=str(tmp_path / "index"), mode="extractive")
    update(settings, embedder, [str(tmp_path / "docs")])
    return Pipeline(settings, load_index(settings, embedder), embedder)


def test_the_engine_names_only_what_no_document_has(note_pipeline):
    pipeline = note_pipeline
    answer = pipeline.ask("What is mixed with 350 grams of water?")
    assert not answer.abstained, answer.note
    assert "350 grams of\nwater and 500 grams" in answer.citations[0].quote
    refused = doubting(pipeline).ask("What did Bertinet say about Okafor's oven?")
    assert refused.abstained and "Okafor" not in refused.text and "Okafor" not in refused.why
    assert refused.text == "The documents don't say anything about Bertinet."
    assert "No document mentions “Bertinet”." in refused.why


# -- the answer checker: every sentence against the source it cites --------------------------
@pytest.mark.parametrize(
    "sentence,words",
    [
        # the number 500 and the rest sit on the wrapped line of the source
        (
            "Mix 100 grams of active starter with 350 grams of water and 500 grams of bread flour.",
            "Mix 100",
        ),
        # a possessive, no accent, and a name written under another case
        ("Okafor said the dough should rest overnight at the Elysee kitchen.", "Okafor"),
        ("You can't skip the second fold, because the NATO-standard oven runs hot.", "skip"),
        # another form of the same negation ("cannot" for "can't")
        ("You cannot skip the second fold, because the Nato-standard oven runs hot.", "skip"),
        # the date and the count, each across a line break
        ("The bakery on Rue Cler opened on March 3, 2021, and sells twelve loaves a day.", "Cler"),
    ],
)
def test_a_supported_sentence_gets_no_reason(checker, sentence, words):
    ev = [sentence_with(words)]
    result = checker.check(sentence, ev, [1])
    assert result.ok and result.reason == "", result.reason


def test_a_speaker_named_before_an_aside_is_the_speaker(checker):
    """ "Okafor, speaking at the kitchen, said ...": the source does say Okafor said it."""
    result = checker.check(
        "Okafor said the dough should rest overnight.", [sentence_with("Okafor")], [1]
    )
    assert "said it" not in result.reason and result.ok, result.reason


def test_a_reason_names_the_source_it_was_checked_against(checker):
    evs = [sentence_with("Cler"), sentence_with("Mix 100")]
    result = checker.support(
        "Mix 100 grams of active starter with 350 grams of water and 10 grams of salt.", evs, [2]
    )
    assert result.reason == "names or numbers not in source [2]: 10"
    assert checker.check("Mix 100 grams of starter.", evs[1:], [2]).ok  # 100 is in source [2]


def test_a_negation_reason_says_which_side_has_it(checker):
    src = [sentence_with("skip")]
    result = checker.check(
        "You skip the second fold, because the Nato-standard oven runs hot.", src, [1]
    )
    assert result.reason == "source [1] has a negation that it lacks"


# -- the whole draft ---------------------------------------------------------------------------
def test_a_good_draft_over_a_wrapped_source_is_kept_with_no_reason(checker):
    evs = [sentence_with("Mix 100"), sentence_with("Cler")]
    draft = (
        "Mix 100 grams of active starter with 350 grams of water and 500 grams of bread flour [1]."
    )
    rendered, why = checked(WATER, draft, evs, checker)
    assert rendered is not None and why == ""


@pytest.mark.parametrize(
    "draft,why",
    [
        ("The documents don't say.", "the model said the sources do not answer it"),
        ("Mix 100 grams of active", "it has no complete sentence to check"),
    ],
)
def test_a_failed_draft_says_what_happened(checker, draft, why):
    rendered, reason = checked(WATER, draft, evidence(), checker)
    assert rendered is None and reason == why


def test_a_draft_that_opens_with_according_to_the_documents_is_checked_on_its_claim(checker):
    """The prompt speaks of documents, so a model may too; the phrase claims nothing."""
    evs = [sentence_with("Mix 100")]
    draft = (
        "According to the documents, mix 100 grams of active starter with 350 grams of "
        "water and 500 grams of bread flour [1]."
    )
    rendered, why = checked(WATER, draft, evs, checker)
    assert rendered is not None and why == ""
    assert rendered[0].startswith("Mix 100 grams")


def test_no_documents_is_said_only_of_an_empty_index(embedder, tmp_path):
    """A document of nothing but questions gives no evidence: that is not an empty index."""
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "open-questions.md").write_text(
        "Open questions\n\nWhere did Okafor leave the oven key?\nWho left the bakery door open "
        "on Sunday night?\n",
        encoding="utf-8",
    )
    settings = Settings.load(env={}, index_dir=str(tmp_path / "index"), mode="extractive")
    update(settings, embedder, [str(tmp_path / "docs")])
    pipeline = Pipeline(settings, load_index(settings, embedder), embedder)
    answer = pipeline.ask("Where did Okafor leave the oven key?")
    assert answer.abstained and answer.text == "The documents don't say."
    assert "no documents" not in answer.note and "only questions" in answer.note


def test_a_draft_that_fails_in_several_sentences_gives_the_first_reason_and_a_count(checker):
    """A reason per failed sentence read as noise in the answer's "Why:" line."""
    evs = [sentence_with("Mix 100"), sentence_with("Cler")]
    draft = (
        "Mix 900 grams of water [1]. The bakery on Rue Cler opened in 1999 [2]. "
        "It sells 40 loaves a day [2]."
    )
    rendered, why = checked(WATER, draft, evs, checker)
    assert rendered is None
    assert why == "names or numbers not in source [1]: 900; 2 more of its claims failed too"


def test_a_how_to_question_needs_its_action_in_the_passages(embedder):
    """ "How do I freeze the dough?" over a note that never mentions freezing is not answered
    with a sentence about the dough; an action the note does describe is."""
    absent = coverage(
        read("How do I freeze the dough?").asking,
        evidence(),
        NOTE,
        0.6,
        vocabulary=set(),
        embedder=embedder,
    )
    assert not absent.covered and absent.reason == "not in the documents: freeze"
    present = coverage(
        read("How do I mix the starter?").asking,
        evidence(),
        NOTE,
        0.6,
        vocabulary=set(),
        embedder=embedder,
    )
    assert present.covered, present.reason


def test_an_abstention_on_a_missing_action_says_how_to(note_pipeline):
    answer = doubting(note_pipeline).ask("How do I freeze the dough?")
    assert answer.abstained and answer.text == "The documents don't say how to freeze."
