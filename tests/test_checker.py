"""The checker decides whether a model-written answer may be shown; these tests pin what it decides.

Drafts are written against real sentences of the seed articles: faithful ones must pass, and a
swapped speaker, a flipped negation or a number the source lacks must fail with the reason the
engine gives. Through the pipeline, a `ScriptedGenerator` plays the model: what it writes is
known, so the answer shown can be asserted exactly.
"""

from __future__ import annotations

import dataclasses
import textwrap

import pytest

from rag import Pipeline
from rag.answering.compose import checked, quote, render
from rag.answering.pipeline import SYSTEM_PROMPT
from rag.answering.query import read
from rag.answering.verify import Checker, coverage
from rag.reading.chunking import split_sentences
from rag.reading.terms import text_stems
from rag.types import Answer, Evidence, Lead
from ui.render import badge_html

from .conftest import SEEDS, file_text
from .scripted import ScriptedGenerator, ScriptedReader


def sentences_of(text: str, doc_id: str, source: str = "") -> list[Evidence]:
    spans = split_sentences(text)
    return [
        Evidence(doc_id, doc_id, source or doc_id, s.start, s.end, text[s.start : s.end], 1.0)
        for s in spans
    ]


SEED_TEXTS = {p.stem: file_text(str(p)) for p in sorted(SEEDS.glob("*.txt"))}
SEED_SENTENCES = [
    ev
    for doc_id, text in SEED_TEXTS.items()
    for ev in sentences_of(text, doc_id, str(SEEDS / f"{doc_id}.txt"))
]


def seed(words: str, score: float = 1.0) -> Evidence:
    """The one seed sentence that contains `words`, as evidence scoring `score`."""
    found = [ev for ev in SEED_SENTENCES if words in ev.text]
    assert len(found) == 1, f"{words!r} is in {len(found)} seed sentences"
    return dataclasses.replace(found[0], score=score)


TROOPS = (
    "While Macron has ruled out sending French combat troops to Ukraine, he is open to "
    "deploying a security force to help guarantee stability once a peace deal is reached."
)
TOLL = "U.N. reports estimate over 10,000 civilian deaths and 14 million displaced Ukrainians."


@pytest.fixture(scope="module")
def checker(embedder):
    return Checker(embedder)


# -- one sentence against the source it cites ------------------------------------------------
# (draft sentence, words that pick its source sentence, the reason; "" = it passes)
CHECKS = [
    # faithful: copied, trimmed, or with the source's quotation marks dropped
    (
        "Sources say both leaders explored backchannel talks involving Turkey and Saudi Arabia.",
        "backchannel",
        "",
    ),
    (
        "Both leaders explored backchannel talks involving Turkey and Saudi Arabia.",
        "backchannel",
        "",
    ),
    (TOLL, "U.N. reports", ""),
    (
        "Macron stressed that Russia cannot be a credible guarantor of peace after its 22-month "
        "invasion of Ukraine.",
        "guarantor",
        "",
    ),
    ("Macron has ruled out sending French combat troops to Ukraine.", "ruled out", ""),
    ("Trump emphasized the conflict’s global economic fallout.", "economic fallout", ""),
    # a swapped speaker: both are named in the source, but it says the other one praised
    (
        "Trump praised Macron’s “pragmatism,” while the former president called France “a great "
        "ally.”",
        "pragmatism",
        "source [1] does not say that Trump said it",
    ),
    (
        "Macron emphasized the conflict’s global economic fallout, including energy price spikes.",
        "economic fallout",
        "names or numbers not in source [1]: Macron",
    ),
    # a swapped speaker opening the sentence, after an aside, after a quote, or with a verb
    # that reports nothing ("resonates"): the name is not in the source
    (
        "Putin stressed that Russia “cannot be a credible guarantor of peace” after its 22-month "
        "invasion of Ukraine.",
        "guarantor",
        "names or numbers not in source [1]: Putin",
    ),
    (
        "Macron, however, suggested withholding U.S. support unless Europe increases financial "
        "contributions.",
        "withholding",
        "names or numbers not in source [1]: Macron",
    ),
    (
        "“This war ends on day one if I’m back in the Oval Office,” Macron added.",
        "day one",
        "names or numbers not in source [1]: Macron",
    ),
    (
        "Macron’s transactional rhetoric resonates with Hungary’s Viktor Orbán, who opposes EU "
        "sanctions.",
        "transactional",
        "names or numbers not in source [1]: Macron’s",
    ),
    # a flipped negation, either way
    (
        "Macron stressed that Russia can be a credible guarantor of peace after its 22-month "
        "invasion of Ukraine.",
        "guarantor",
        "source [1] has a negation that it lacks",
    ),
    (
        "Trump’s transactional rhetoric does not resonate with Hungary’s Viktor Orbán, who opposes "
        "EU sanctions.",
        "transactional",
        "it has a negation that source [1] lacks",
    ),
    (
        "He believes that Putin knows how far Trump is willing to go, which could serve as a "
        "strategic tool in negotiations.",
        "does not know",
        "source [1] has a negation that it lacks",
    ),
    # a number the source lacks: in digits, in a compound, or as a word
    (
        "U.N. reports estimate over 12,000 civilian deaths and 14 million displaced Ukrainians.",
        "U.N. reports",
        "names or numbers not in source [1]: 12,000",
    ),
    (
        "Macron stressed that Russia cannot be a credible guarantor of peace after its 24-month "
        "invasion of Ukraine.",
        "guarantor",
        "names or numbers not in source [1]: 24-month",
    ),
    (
        "U.N. reports estimate over 10,000 civilian deaths and 14 billion displaced Ukrainians.",
        "U.N. reports",
        "names or numbers not in source [1]: billion",
    ),
    (
        "U.N. reports estimate over 10,000 civilian deaths and three million displaced Ukrainians.",
        "U.N. reports",
        "names or numbers not in source [1]: three",
    ),
    (
        "As the war in Ukraine nears its fourth year, Macron believes it is in the shared interest of "
        "both the U.S. and Europe to prevent Russia from further aggression.",
        "third year",
        "names or numbers not in source [1]: fourth",
    ),
    # a claim the source does not make
    (
        "Macron has agreed to send French combat troops to Ukraine.",
        "ruled out",
        "only 86% of its words are in source [1]",
    ),
    ("Macron.", "ruled out", "a sentence of fewer than two content words"),
]


@pytest.mark.parametrize("sentence,words,reason", CHECKS, ids=[c[0][:48] for c in CHECKS])
def test_a_sentence_passes_only_if_its_source_says_it(checker, sentence, words, reason):
    result = checker.check(sentence, [seed(words)], [1])
    assert (result.ok, result.reason) == (reason == "", reason)
    assert result.cited == (1,)


# What the checker cannot see: it compares words, names, numbers and negations, not who does
# what to whom. Strict, so that a checker that learns to see these fails here and is moved up.
BLIND_SPOTS = [
    # the negation moved from one clause to the other: one in each
    (
        "Macron argues that Ukraine and its European partners must not be directly involved in the "
        "negotiations, to ensure a fair agreement that legitimizes Russian aggression.",
        "legitimize",
    ),
    # what he ruled out swapped with what he is open to, in the source's own words
    ("Macron has ruled out sending a security force to Ukraine.", "ruled out"),
]


@pytest.mark.xfail(strict=True, reason="bag-of-words check: the meaning changed, the words did not")
@pytest.mark.parametrize("sentence,words", BLIND_SPOTS, ids=["moved negation", "swapped object"])
def test_known_blind_spots(checker, sentence, words):
    assert not checker.check(sentence, [seed(words)], [1]).ok


# -- a number on the next line, or in the next sentence --------------------------------------
# The seed paragraph, hard-wrapped: "U.N." ends a line and the rest of its sentence, numbers and
# all, is on the next one. A sentence is held to the sentence it cites, whatever its lines: the
# cited sentence's next line is that sentence; the next sentence is another source, even when
# it shares a line with the cited one.
WRAPPED = (
    textwrap.fill(
        next(
            line
            for line in SEED_TEXTS["trump-macron-split-on-trusting-putin"].splitlines()
            if line.startswith("The war’s human toll")
        ),
        60,
    )
    + "\n"
)


def wrapped() -> list[Evidence]:
    """The sentence with the numbers, best; then the one before and the one after it."""
    toll, un, cited = sentences_of(WRAPPED, "wrapped")[:3]
    assert toll.text == "The war’s human toll loomed large during discussions."
    assert un.text.startswith("U.N.\nreports estimate over 10,000")  # the premise
    assert cited.text.startswith("Macron cited these figures")
    ranked = ((un, 1.0), (toll, 0.9), (cited, 0.85))
    return [dataclasses.replace(ev, score=score) for ev, score in ranked]


@pytest.mark.parametrize(
    "draft,answer,reason",
    [
        # the numbers are on the next line of the sentence cited: it says them
        (f"{TOLL[:-1]} [1].", f"{TOLL} [1]", ""),
        # the number is in the next sentence, which starts on the cited one's line
        (
            "The war’s human toll of 10,000 civilian deaths loomed large during discussions [2].",
            None,
            "names or numbers not in source [2]: 10,000",
        ),
        # a blend of the two: each source is checked alone
        (
            "The war’s human toll of 10,000 civilian deaths loomed large during discussions [2][1].",
            None,
            "names or numbers not in source [2]: 10,000",
        ),
        # a true sentence cited to its neighbour: the citation would show the wrong passage
        (
            "Macron cited these figures to argue for sustained pressure on Russia [1].",
            None,
            "names or numbers not in source [1]: Macron, Russia",
        ),
        # no valid marker: it is checked against each source and cites the one that says it
        (f"{TOLL[:-1]} [9].", f"{TOLL} [1]", ""),
    ],
    ids=["next line", "next sentence", "blend", "neighbour cited", "no valid marker"],
)
def test_a_number_counts_only_in_the_sentence_cited(checker, draft, answer, reason):
    rendered, why = checked(
        read("What did the U.N. report about the war’s toll?"), draft, wrapped(), checker
    )
    assert why == reason
    assert (rendered and rendered[0]) == answer


# -- whole drafts: preambles, cut-offs, citations ----------------------------------------------
QUESTION = "Will France send combat troops to Ukraine?"
GOOD = "Macron has ruled out sending French combat troops to Ukraine [1]."
SHOWN = "Macron has ruled out sending French combat troops to Ukraine. [1]"  # as rendered


def troops_evidence() -> list[Evidence]:
    """The best sentence for QUESTION, then two weaker ones, as retrieval would rank them."""
    return [seed("ruled out", 1.0), seed("Such a force", 0.85), seed("Macron sees this", 0.5)]


@pytest.mark.parametrize(
    "draft,answer,reason",
    [
        (GOOD, SHOWN, ""),
        # filler before the answer claims nothing: dropped, and the claim is checked
        (
            "Sure! Based on the sources, Macron has ruled out sending French combat troops to "
            "Ukraine [1].",
            SHOWN,
            "",
        ),
        (
            "Certainly. According to the sources, Macron has ruled out sending French combat "
            "troops to Ukraine [1].",
            SHOWN,
            "",
        ),
        (
            "Based on the provided sources, Macron has ruled out sending French combat troops to "
            "Ukraine [1].",
            SHOWN,
            "",
        ),
        # cut off by the token limit: the unfinished sentence is dropped, the finished one kept
        (GOOD + " He is open to deploying a security", SHOWN, ""),
        (GOOD + " He is open to", SHOWN, ""),  # short enough to read as a title, unclosed
        (
            "Macron has ruled out sending French combat troops to",
            None,
            "it has no complete sentence to check",
        ),
        (
            "Macron has ruled out sending French combat troops to Ukraine [",
            None,
            "it has no complete sentence to check",
        ),
        # a sentence that fails is never shown; one that passes may be
        (GOOD + " Trump has agreed to send 5,000 troops [2].", SHOWN, ""),
        (
            "Macron has agreed to send French combat troops to Ukraine [1].",
            None,
            "only 86% of its words are in source [1]",
        ),
        ("The documents don't say.", None, "the model said the sources do not answer it"),
        # true, but from a source that answers the question less well than the best one
        (
            "Macron sees this as a necessary step in preventing future conflicts [3].",
            None,
            "it cites a source that matches the question less well than the best one",
        ),
        (
            "Such a force would ensure that Russia does not violate the terms of any negotiated "
            "settlement [2].",
            None,
            "it does not cite the best-matching source",
        ),
        # a repeated sentence is shown once
        (f"{GOOD} {GOOD}", SHOWN, ""),
    ],
    ids=[
        "faithful",
        "sure, based on",
        "certainly, according to",
        "based on the provided",
        "cut off after one",
        "cut off short",
        "cut off only",
        "cut off in a marker",
        "one of two fails",
        "unfaithful",
        "don't say",
        "weaker source",
        "not the best source",
        "repeated",
    ],
)
def test_a_draft_is_shown_only_as_far_as_it_is_checked(checker, draft, answer, reason):
    rendered, why = checked(read(QUESTION), draft, troops_evidence(), checker)
    assert why == reason
    assert (rendered and rendered[0]) == answer
    if rendered:
        assert [c.quote for c in rendered[1]] == [troops_evidence()[0].text]


DISPLACED = "How many Ukrainians have been displaced?"
UN = "U.N. reports estimate over 10,000 civilian deaths and 14 million displaced Ukrainians."


@pytest.mark.parametrize(
    "draft,answer,reason",
    [
        # SmolLM2's own rewrite on the demo articles, which used to pass badged "checked":
        # the talk about the sources is stripped and the claim after it is checked
        (
            "The sources cited in the document are: U.N. reports estimate over 10,000 civilian "
            "deaths and 14 million displaced Ukrainians [1]",
            f"{UN[:-1]} [1]",
            "",
        ),
        (
            "According to the text provided, U.N. reports estimate over 10,000 civilian deaths and "
            "14 million displaced Ukrainians [1].",
            f"{UN} [1]",
            "",
        ),
        (
            "Based on the sources, U.N. reports estimate over 10,000 civilian deaths and 14 million "
            "displaced Ukrainians [1].",
            f"{UN} [1]",
            "",
        ),
        # talk about the sources inside the sentence cannot be stripped: the sentence is refused
        (
            "U.N. reports estimate 14 million displaced Ukrainians, as the provided text says [1].",
            None,
            "only 88% of its words are in source [1]",
        ),
        (
            "U.N. reports estimate over 10,000 civilian deaths and 14 million displaced Ukrainians "
            "and U.N. reports estimate over 10,000 civilian deaths, the cited sources [1].",
            None,
            "it talks about the sources (“cited sources”) instead of answering",
        ),
    ],
    ids=[
        "sources cited in the document are",
        "according to the text provided",
        "based on the sources",
        "as the provided text says",
        "the cited sources",
    ],
)
def test_talk_about_the_sources_is_stripped_or_refused(checker, draft, answer, reason):
    evidence = [seed("14 million displaced", 1.0)]
    rendered, why = checked(read(DISPLACED), draft, evidence, checker)
    assert why == reason
    assert (rendered and rendered[0]) == answer


def test_render_numbers_sources_by_first_appearance():
    a, b = seed("ruled out"), seed("Such a force")
    text, cited = render([("One.", [b]), ("Two.", [a, b]), ("Three.", [b, b])])
    assert text == "One. [1] Two. [2][1] Three. [1]"
    assert [(c.n, c.quote) for c in cited] == [(1, b.text), (2, a.text)]


def test_a_quote_takes_an_elaborating_next_sentence_and_keeps_exact_offsets():
    lead = seed("Despite these concerns", 1.0)
    follow = seed("does not know how far", 0.7)
    unrelated = seed("ruled out", 0.1)
    after = dataclasses.replace(follow, score=0.0)  # the next sentence, unranked
    text, cited = quote([Lead(lead, after)], [lead, follow, unrelated])
    assert text == f"{lead.text} [1] {follow.text} [2]"
    for c in cited:
        assert file_text(c.source)[c.start : c.end] == c.quote


# -- coverage: may the evidence answer at all? -------------------------------------------------
ALL_STEMS = text_stems(" ".join(SEED_TEXTS.values()))


@pytest.mark.parametrize(
    "question,evidence_words,reason",
    [
        ("How many civilians have died in the war?", ["U.N. reports"], ""),
        ("How many Ukrainians have been displaced?", ["U.N. reports"], ""),
        ("Which countries were involved in the backchannel talks?", ["backchannel"], ""),
        ("Will France send combat troops to Ukraine?", ["ruled out", "great ally"], ""),
        # "French" is not "France": found elsewhere, so not said to be missing from the documents
        (
            "Will France send combat troops to Ukraine?",
            ["ruled out"],
            "not in the passages found for this question: France",
        ),
        (
            "How many soldiers have died in the war?",
            ["U.N. reports", "human toll"],
            "the best-matching sentences give no number of soldiers for this",
        ),
        (
            "When did Macron and Trump meet?",
            ["In a high-stakes meeting", "pivotal moment"],
            "the best-matching sentences give no date for this",
        ),
        (
            "What did the German chancellor say about the meeting?",
            ["pivotal moment"],
            "not in the documents: German",
        ),
        (
            "What did Macron say about Zelensky?",
            ["pivotal moment"],
            "not in the documents: Zelensky",
        ),
        ("What is the currency of France?", ["great ally"], "not in the documents: currency"),
        # a word as common as "state" only frames the question: its absence is no reason
        ("What is the state of U.S. aid to Ukraine?", ["counteroffensive stalling"], ""),
        ("Is it?", ["great ally"], "the question names nothing to look for"),
    ],
)
def test_coverage(question, evidence_words, reason):
    evidence = [seed(w) for w in evidence_words]
    retrieved = " ".join(ev.text for ev in evidence)
    cov = coverage(read(question).asking, evidence, retrieved, 0.6, ALL_STEMS)
    assert (cov.covered, cov.reason) == (reason == "", reason)


def test_coverage_refuses_evidence_far_from_the_question():
    cov = coverage(
        read("How many civilians have died in the war?").asking,
        [seed("U.N. reports")],
        TOLL,
        0.1,
        ALL_STEMS,
    )
    assert not cov.covered and cov.reason == (
        "no sentence found is close to this question (best match: cosine 0.10)"
    )


# -- end to end: the pipeline with a scripted model ------------------------------------------
@pytest.fixture()
def scripted(seed_settings, seed_index, embedder):
    """A pipeline over the seed articles whose model says what the test scripts, and whose
    reader judges that the best passages answer (a rewrite is made only of an answer)."""
    gen = ScriptedGenerator()
    return Pipeline(seed_settings, seed_index, embedder, gen, ScriptedReader(rest=0.97)), gen


def events(pipeline: Pipeline, question: str, **overrides) -> tuple[list[Answer], str]:
    """The answers after the reader's verdict (the quote, then the final one), and the draft."""
    answers, pieces = [], ""
    for event in pipeline.stream(question, **overrides):
        if isinstance(event, Answer):
            if event.pending != "reader":
                answers.append(event)
        else:
            pieces += event
    return answers, pieces


def test_a_faithful_model_answer_is_shown_checked_and_cites_its_passage(scripted):
    pipeline, gen = scripted
    gen.enqueue(GOOD)
    (quote, answer), draft = events(pipeline, QUESTION)
    # the model was shown the best sentence as source [1], which its reply cites
    ((system, user),) = gen.prompts
    assert system == {"role": "system", "content": SYSTEM_PROMPT}
    assert user["content"].startswith(f"Sources:\n[1] {TROOPS}\n")
    assert user["content"].endswith(f"\n\nQuestion: {QUESTION}")
    assert gen.calls == [(pipeline.settings.max_tokens, pipeline.settings.temperature)]
    assert draft == GOOD  # streamed as it was written, for progress only
    assert not quote.final and quote.mode == "extractive"
    assert answer.final and answer.mode == "generate"
    assert answer.note.endswith("; rewritten, every sentence checked against its source")
    assert answer.outcome == "answer" and answer.confidence == quote.confidence
    assert ">checked<" in badge_html(answer.mode)
    assert answer.text == SHOWN
    (c,) = answer.citations
    assert c.n == 1 and c.quote == TROOPS
    assert file_text(c.source)[c.start : c.end] == TROOPS


@pytest.mark.parametrize(
    "reply,reason",
    [
        (
            "Macron has agreed to send French combat troops to Ukraine [1].",
            "only 86% of its words are in source [1]",
        ),
        (
            "While Macron has not ruled out sending French combat troops to Ukraine, he is open to "
            "deploying a security force to help guarantee stability once a peace deal is reached [1].",
            "it has a negation that source [1] lacks",
        ),
        (
            "While Trump has ruled out sending French combat troops to Ukraine, he is open to "
            "deploying a security force to help guarantee stability once a peace deal is reached [1].",
            "names or numbers not in source [1]: Trump",
        ),
        (
            "While Macron has ruled out sending 5,000 French combat troops to Ukraine, he is open to "
            "deploying a security force to help guarantee stability once a peace deal is reached [1].",
            "names or numbers not in source [1]: 5,000",
        ),
    ],
    ids=["claim", "negation", "speaker", "number"],
)
def test_an_unfaithful_model_answer_is_replaced_by_the_quote(scripted, reply, reason):
    pipeline, gen = scripted
    gen.enqueue(reply)
    (quote, answer), draft = events(pipeline, QUESTION)
    assert draft == reply
    assert answer.final and answer.mode == "extractive"
    assert answer.note.endswith(f"; the rewrite was not used ({reason})")
    assert answer.why == quote.why and answer.confidence == quote.confidence  # nothing contradicted
    assert ">quoted from the sources<" in badge_html(answer.mode)
    assert (answer.text, answer.citations) == (quote.text, quote.citations)
    assert answer.text.startswith(TROOPS + " [1]") and answer.citations[0].quote == TROOPS


def test_a_reply_cut_off_by_the_token_limit_shows_its_finished_sentence(scripted):
    pipeline, gen = scripted
    gen.enqueue(GOOD + " He is open to deploying a security force to help guarantee stability.")
    max_tokens = len(GOOD.split()) + 4
    (_, answer), draft = events(pipeline, QUESTION, max_tokens=max_tokens)
    assert gen.calls[0][0] == max_tokens
    assert draft == GOOD + " He is open to"
    assert answer.mode == "generate" and answer.text == SHOWN


def test_a_model_that_fails_leaves_the_quote(scripted):
    pipeline, gen = scripted
    gen.enqueue(RuntimeError("llama_decode returned -1"))
    (quote, answer), draft = events(pipeline, QUESTION)
    assert draft == "" and answer.mode == "extractive" and answer.text == quote.text
    assert answer.note.endswith("; the model could not answer") and answer.why == quote.why


def test_the_model_is_not_asked_what_the_documents_do_not_cover(scripted):
    pipeline, gen = scripted
    pipeline.reader = ScriptedReader(rest=0.01)  # no passage answers it
    answer = pipeline.ask("What is the currency of France?")
    assert answer.outcome != "answer" and gen.prompts == []


def test_a_follow_up_shows_the_model_the_earlier_question(scripted):
    pipeline, gen = scripted
    gen.enqueue(GOOD)
    answer = pipeline.ask(
        "Will he send combat troops to Ukraine?",
        history=["What does Macron plan to discuss with Trump?"],
    )
    assert (
        "\nEarlier question: What does Macron plan to discuss with Trump?\n"
        in (gen.prompts[0][1]["content"])
    )
    assert answer.mode == "generate" and answer.text == SHOWN, answer.note
