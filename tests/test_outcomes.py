"""Three outcomes from fitted probabilities: an answer, a passage marked not sure, or "the
documents don't say"; every answer graded, in plain words and in figures; a verdict that would
wait too long for the model is skipped; a rewrite never contradicts the verdict.

A scripted reader (tests/test_reader.py's `Scripted`) gives the probabilities the test asks for,
so each branch is reached on the real seed articles with the shipped fit."""

from __future__ import annotations

import re
import threading
import time

import pytest

from rag import Pipeline
from rag.answering.confidence import Signals, decide, load
from rag.answering.pipeline import WHY_BUSY, WHY_READER_ANSWER, WHY_READER_NOT_SURE
from rag.errors import ModelBusy
from rag.llm.generate import ModelLock

from .scripted import ScriptedGenerator
from .scripted import ScriptedReader as Scripted
from .test_reader import QUESTION

MODELS = load()


@pytest.fixture()
def engine(seed_settings, seed_index, embedder):
    def make(reader, generator=None, **settings):
        s = seed_settings.replace(mode="generate" if generator else "extractive", **settings)
        return Pipeline(s, seed_index, embedder, generator, reader)

    return make


def test_the_shipped_fit_has_the_cuts_of_the_three_outcomes():
    for kind in ("reader", "rules"):
        answer, refuse = MODELS[kind].threshold, MODELS[f"{kind}_unanswerable"].threshold
        assert 0.5 <= answer < 1.0 and 0.0 < refuse < 1.0
        fitted = MODELS[kind].fitted
        assert set(fitted["leave_one_corpus_out"]) >= {"news"}  # what it was fitted on
    assert MODELS["reader"].window > 0 and MODELS["reader"].candidates >= 1


@pytest.mark.parametrize("p_yes", [0.02, 0.3, 0.6, 0.97])
def test_each_outcome_follows_the_cuts(p_yes):
    s = Signals((p_yes,), (1.0,), 0, 0.6, "")
    v = decide(MODELS, "reader", s)
    if v.right >= MODELS["reader"].threshold:
        assert v.outcome == "answer"
    elif v.absent >= MODELS["reader_unanswerable"].threshold:
        assert v.outcome == "not_in_documents"
    else:
        assert v.outcome == "not_sure"


def test_more_yes_from_the_reader_never_lowers_the_confidence_in_the_answer():
    conf = [
        MODELS["reader"].confidence(Signals((p,), (1.0,), 0, 0.6, ""))
        for p in (0.01, 0.1, 0.3, 0.5, 0.7, 0.9, 0.99)
    ]
    assert conf == sorted(conf)


UNSURE_QUESTIONS = (
    QUESTION,
    "What did Trump call France?",
    "What is the state of U.S. aid to Ukraine?",
)


def _unsure(engine):
    """A question and a reader's P(yes) that the shipped fit calls not sure, and its answer."""
    for question in UNSURE_QUESTIONS:
        for p in (0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.7):
            answer = engine(Scripted(rest=p)).ask(question)
            if answer.outcome == "not_sure":
                return question, p, answer
    pytest.skip("this fit has no not-sure band for these questions")


def test_an_unsure_reader_shows_the_passage_marked_not_sure(engine):
    _, _, answer = _unsure(engine)
    assert answer.outcome == "not_sure" and not answer.abstained and answer.citations
    assert answer.why == WHY_READER_NOT_SURE
    assert 0.0 <= answer.confidence < MODELS["reader"].threshold


def test_every_line_of_the_json_has_a_confidence_an_outcome_and_a_plain_reason(engine):
    questions = [
        QUESTION,
        "Who won the World Cup?",
        "What happened?",
        "What did Trump call France?",
    ]
    for reader in (None, Scripted({"14 million": 0.97}), Scripted(rest=0.01)):
        for generator in (None, ScriptedGenerator("Macron called France a great ally [1].")):
            pipeline = engine(reader, generator)
            for q in questions:
                for event in pipeline.stream(q):
                    if isinstance(event, str):
                        continue
                    data = event.to_json()
                    assert 0.0 <= data["confidence"] <= 1.0, (q, data)
                    assert data["outcome"] in ("answer", "not_sure", "not_in_documents")
                    assert data["why"] and not re.search(r"\d\.\d|P\(", data["why"]), data
                    assert data["abstained"] == (data["outcome"] == "not_in_documents")
                if generator is not None:
                    generator.enqueue("Macron called France a great ally [1].")


def test_a_rewrite_carries_the_grade_of_the_passage_it_is_held_to(engine):
    gen = ScriptedGenerator("U.N. reports estimate 14 million displaced Ukrainians [1].")
    answers = [
        e
        for e in engine(Scripted({"14 million": 0.97}), gen).stream(QUESTION)
        if not isinstance(e, str)
    ]
    final = answers[-1]
    assert final.mode == "generate" and final.outcome == "answer"
    assert final.confidence == answers[-2].confidence and final.confidence is not None
    assert final.why.startswith(WHY_READER_ANSWER)


def test_a_writer_that_declines_what_the_reader_accepted_does_not_contradict_it(engine):
    gen = ScriptedGenerator("The documents don't say.")
    answers = [
        e
        for e in engine(Scripted({"14 million": 0.97}), gen).stream(QUESTION)
        if not isinstance(e, str)
    ]
    judged, final = answers[-2], answers[-1]
    assert final.text == judged.text and final.outcome == "answer"
    assert final.confidence == judged.confidence and final.why == WHY_READER_ANSWER
    assert "fail" not in final.why and "the sources do not answer" not in final.why


def test_a_passage_the_engine_is_not_sure_of_is_never_rewritten(engine):
    question, unsure, _ = _unsure(engine)
    gen = ScriptedGenerator("U.N. reports estimate 14 million displaced Ukrainians [1].")
    answer = engine(Scripted(rest=unsure), gen).ask(question)
    assert answer.outcome == "not_sure" and answer.mode == "extractive" and gen.prompts == []


class Busy(Scripted):
    """A reader whose model would be free only after `wait` seconds."""

    def __init__(self, wait: float):
        super().__init__({"14 million": 0.97})
        self.wait = wait

    def expected_wait(self) -> float:
        return self.wait


def test_a_verdict_that_would_wait_too_long_is_skipped_and_the_first_answer_says_so(engine):
    pipeline = engine(Busy(60.0), max_wait=5.0)
    events = list(pipeline.stream(QUESTION))
    assert len(events) == 1 and events[0].final  # no "checking" answer: nothing to wait for
    answer = events[0]
    assert answer.why.endswith(WHY_BUSY) and "no verdict" in answer.note
    assert answer.confidence is not None and answer.outcome in ("answer", "not_sure")
    assert pipeline.reader.seen == []  # the reader was never asked
    assert engine(Busy(1.0), max_wait=5.0).ask(QUESTION).why == WHY_READER_ANSWER


def test_a_verdict_that_times_out_waiting_for_the_model_leaves_the_first_answer(engine):
    class TimesOut(Scripted):
        def judge(self, *args, **kwargs):
            raise ModelBusy("the model was busy with other questions for 5 s")

    answer = engine(TimesOut()).ask(QUESTION)
    assert answer.why.endswith(WHY_BUSY) and "busy with other questions" in answer.note


def test_the_lock_estimates_the_wait_from_what_the_calls_ahead_took():
    lock, release, holding = ModelLock(), threading.Event(), threading.Event()
    with lock.hold(first=True):
        time.sleep(0.3)  # a verdict took 0.3 s
    assert lock.expected_wait(first=True) == 0.0  # the model is free

    def hold():
        with lock.hold(first=True):
            holding.set()
            release.wait(5)

    t = threading.Thread(target=hold)
    t.start()
    assert holding.wait(5)
    assert 0.0 < lock.expected_wait(first=True) <= 0.5  # what is left of a verdict like it
    with pytest.raises(ModelBusy, match="busy with other questions"):
        with lock.hold(first=True, timeout=0.05):
            pass
    release.set()
    t.join(5)
    with lock.hold(first=False, timeout=1.0):  # free again: a timed call goes at once
        pass
