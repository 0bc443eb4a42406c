"""Question in, checked and cited `Answer` out. The question is read once (`rag.answering.query`), then
five stages hand values down:

    retrieve  the chunks for the question, and the sentences in them that an answer may cite
    decide    the rules' signals (names and words found, the kind of answer wanted, the best
              cosine) give fitted probabilities that the best sentence answers and that the
              documents do not; from them one of three outcomes (rag.answering.confidence): an answer,
              not sure (the best passage, marked so), or the documents don't say. This first
              answer is shown at once.
    judge     a reader model (rag.llm.reader) judges the best-ranked sentences; with the rule
              signals its verdicts give the same three outcomes, better founded
    rewrite   in generate mode the model rewrites an answer (never a not-sure passage), after
              judging
    check     every sentence of the rewrite against the source it cites; those that fail are
              dropped, and if none holds, the quote stands with its outcome and confidence
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections import abc
from collections.abc import Iterator, Sequence
from typing import NamedTuple

from ..errors import ModelBusy, ModelError
from ..indexing.embed import CachedEmbedder, Embedder
from ..indexing.index import Index
from ..llm.generate import Generator, Message
from ..llm.reader import Candidate, Reader
from ..settings import Settings
from ..types import Answer, Evidence, Lead
from . import compose
from . import confidence as confidence_
from .query import Query, check_question, read
from .retrieve import Retrieved, Retriever
from .verify import Checker, Coverage, coverage, plain_reason

log = logging.getLogger(__name__)

SYSTEM_PROMPT = (
    "You answer questions using only the numbered sources. "
    "Answer in one or two short sentences, copying the words of the sources. "
    "End each sentence with the number of its source in brackets, like [1]. "
    "If the sources do not answer the question, say: The documents don't say."
)

PROMPT_OVERHEAD = 48  # tokens the chat template adds around the messages

NAMES_NOTHING = (
    "The question names nothing to look up. Ask about something the documents "
    "mention: a name, a thing, an event."
)

# the plain reasons (Answer.why); the figures behind them go to Answer.note
WHY_READER_ANSWER = "The reader model judged that this passage answers the question."
WHY_READER_NOT_SURE = (
    "This is the closest passage found, but the reader model is not sure "
    "that it answers the question."
)
WHY_RULES_ANSWER = "This passage holds the question's words and is close to it in meaning."
WHY_RULES_NOT_SURE = "This is the closest passage found; it may not answer the question."
WHY_NOT_CHECKED = "The reader model could not check it, so this rests on the wording alone."
WHY_BUSY = (
    "The reader model was busy with other people's questions, so this was not checked "
    "by it and rests on the wording alone."
)
WHY_REWRITTEN = "The model put it in its own words; each sentence was checked against its source."


class Prompt(NamedTuple):
    messages: list[Message]
    evidence: list[Evidence]  # the sources the prompt numbers, which the rewrite may cite


class Rules(NamedTuple):
    """What the rules make of the evidence for a question."""

    abstention: Answer | None  # the rules' abstention, or None when they find it covered
    coverage: Coverage | None  # None when there was nothing to judge (no evidence, no words)
    cosine: float  # the question to its best sentence

    def signals(
        self, p: tuple[float, ...], found: Retrieved, n: int, chosen: int = 0
    ) -> confidence_.Signals:
        """The confidence's inputs: the reader's verdicts `p` (or none), the rule scores of
        the `n` best-ranked sentences, the one chosen, how far the best stands above the
        next, and what the rules found."""
        c = self.coverage
        assert c is not None
        rule = tuple(e.score for e in found.ranked[:n])
        runner_up = found.ranked[1].score if len(found.ranked) > 1 else 0.0
        return confidence_.Signals(
            p, rule, chosen, self.cosine, "" if c.covered else c.kind, bool(c.missing), runner_up
        )


class ForReader(NamedTuple):
    """What the reader is asked about one question, and what quoting each candidate shows."""

    question: str  # as the reader reads it: with the question before it, for a follow-up
    candidates: list[Evidence]  # the best-ranked sentences
    units: list[list[Evidence]]  # each with the next sentence of its paragraph, if it finishes it
    shown: list[Candidate]  # what the reader sees of each unit


class Judged(NamedTuple):
    """The reader's verdicts on the best-ranked sentences of one question."""

    units: list[list[Evidence]]  # what quoting each judged sentence shows
    p: tuple[float, ...]  # the reader's P(answers the question), one per candidate
    signals: confidence_.Signals
    verdict: confidence_.Verdict  # the outcome, P(right) and P(absent), from the fitted models


class Pipeline:
    def __init__(
        self,
        settings: Settings,
        index: Index,
        embedder: Embedder,
        generator: Generator | None = None,
        reader: Reader | None = None,
    ):
        self.settings = settings
        self.embedder = (
            embedder if isinstance(embedder, CachedEmbedder) else CachedEmbedder(embedder)
        )
        self.generator = generator
        self.reader = reader
        self.models = confidence_.load()
        self.checker = Checker(self.embedder)
        self.set_index(index)

    def set_generator(self, generator: Generator | None) -> None:
        """Swap the LLM that writes (the reader stays); an answer in progress keeps the one it
        started with."""
        self.generator = generator

    def set_index(self, index: Index) -> None:
        """Swap in an updated index (after documents are added or removed); an answer in
        progress keeps the index it started with."""
        self._retrievers = {
            self.settings.retrieval: Retriever(index, self.embedder, self.settings.retrieval)
        }
        self.index = index

    @property
    def retriever(self) -> Retriever:
        """The retriever for the settings' method over the current index."""
        return self._retriever(self.settings.retrieval)

    # -- the two entry points ------------------------------------------------------------
    def ask(self, question: str, history: Sequence[str] = (), **overrides) -> Answer:
        answer = None
        for event in self.stream(question, history, **overrides):
            if isinstance(event, Answer):
                answer = event
        assert answer is not None
        return answer

    def stream(
        self, question: str, history: Sequence[str] = (), **overrides
    ) -> Iterator[str | Answer]:
        """Answer first: yields the rules' outcome (a quote, a passage marked not sure, or the
        documents don't say) as soon as it is ready. With a reader, that first Answer has
        `final=False, pending="reader"`, and the reader's verdict follows, with its outcome
        and confidence; a verdict that would wait longer than `max_wait` seconds for the
        model is skipped, and the first answer stands, saying so. In generate mode an answer
        then has `pending="rewrite"`; the model's rewrite follows as raw text pieces (for
        progress, never to be shown as the answer), then the final Answer: the sentences of
        the rewrite that passed the check, else the same quote."""
        s = self.settings.replace(**overrides) if overrides else self.settings
        clock = _Clock()
        query = read(check_question(question, s), _earlier(history, s))
        retriever, generator, reader = self._retriever(s.retrieval), self.generator, self.reader
        found = retriever.find(query, s.top_k, s.evidence_k)
        clock.mark("retrieve_ms")
        rules = self.rules(query, found, retriever, s)
        first = self.decide_by_rules(query, found, rules, s)
        if reader is not None and rules.coverage is not None and "reader" in self.models:
            waiting = reader.expected_wait()
            if waiting > s.max_wait:
                first = _unchecked(first, waiting, s.max_wait)
            else:
                yield clock.stamp(
                    dataclasses.replace(
                        first, pending="reader", note="checking the sources with the reader"
                    ),
                    final=False,
                )
                first = self.judge(reader, query, found, rules, retriever, s, first)
                clock.mark("reader_ms")
                clock.mark("reader_tokens", float(getattr(reader, "tokens_read", 0)))
        evidence = _first(first, found.evidence)
        prompt = None
        if first.outcome == "answer" and s.mode == "generate" and generator is not None:
            if generator.expected_wait() > s.max_wait:
                first = dataclasses.replace(
                    first,
                    note=f"{first.note}; no rewrite: the model "
                    f"was busy for more than {s.max_wait:.0f} s",
                )
            else:
                prompt = self.fit_prompt(query, evidence, s, generator)
                if prompt is None:
                    first = dataclasses.replace(
                        first,
                        note=f"{first.note}; no rewrite: the "
                        "question is too long for the model's context",
                    )
        if prompt is None:
            yield clock.stamp(first)
            return
        yield clock.stamp(
            dataclasses.replace(
                first, pending="rewrite", note=f"{first.note}; the model is rewriting it"
            ),
            final=False,
        )
        draft = yield from self.rewrite(generator, prompt, s, clock)
        generate_ms = clock.since("reader_ms" if "reader_ms" in clock.marks else "retrieve_ms")
        if draft is None:
            final = dataclasses.replace(first, note=f"{first.note}; the model could not answer")
        else:
            final = self.check(query, draft, prompt, first)
        yield clock.stamp(dataclasses.replace(final, pending=""), generate_ms)

    # -- the stages -----------------------------------------------------------------------
    def retrieve(self, query: Query, s: Settings | None = None) -> Retrieved:
        """The passages, ranked sentences and numbered sources for `query`."""
        s = s or self.settings
        return self._retriever(s.retrieval).find(query, s.top_k, s.evidence_k)

    def rules(self, query: Query, found: Retrieved, retriever: Retriever, s: Settings) -> Rules:
        """The rules' verdict on the evidence: names and numbers asked about, the thing asked
        for, the kind of answer wanted, the best cosine."""
        model = self.models.get("hard_unanswerable")
        hard = model.confidence(None) if model is not None else None
        if not found.evidence:
            if not retriever.index.docs:
                return Rules(
                    _abstain(
                        query,
                        _dont_say((), s.collection),
                        "the index has no documents",
                        1.0,
                        "No documents are indexed yet.",
                    ),
                    None,
                    0.0,
                )
            why = (
                "the passages found hold only questions, instructions, code or titles; none "
                "states anything to quote"
            )
            return Rules(
                _abstain(
                    query,
                    _dont_say((), s.collection),
                    why,
                    hard,
                    "The passages found hold only questions, instructions, code or "
                    "titles; none states anything to quote.",
                ),
                None,
                0.0,
            )
        if not query.terms.stems:
            return Rules(
                _abstain(
                    query,
                    NAMES_NOTHING,
                    "no content words in the question",
                    hard,
                    "The question names nothing to look up.",
                ),
                None,
                0.0,
            )
        cosine = self._best_cosine(query, found.evidence[0], retriever.index)
        verdict = coverage(
            query.asking, found.evidence, found.text, cosine, retriever.vocabulary, self.embedder
        )
        if not verdict.covered:
            action = query.asking.asked_for if query.asking.how_to else ""
            text = _dont_say(verdict.missing, s.collection, action)
            return Rules(
                _abstain(query, text, verdict.reason, why=plain_reason(verdict)), verdict, cosine
            )
        return Rules(None, verdict, cosine)

    def decide_by_rules(self, query: Query, found: Retrieved, rules: Rules, s: Settings) -> Answer:
        """The first answer: the rules' quote, or their abstention, as the outcome that the
        rules' fitted probabilities give (no fit: as the rules found)."""
        if rules.coverage is None:  # nothing to judge: the rules' abstention stands
            return rules.abstention
        quote = dataclasses.replace(self.quote(query, found), why=WHY_RULES_ANSWER)
        if "rules" not in self.models:
            return rules.abstention or quote
        signals = rules.signals((), found, 1)
        verdict = confidence_.decide(self.models, "rules", signals)
        said = (
            f"the rules: P(right) {verdict.right:.2f} (answer at "
            f"{self.models['rules'].threshold:.2f}), P(not in the documents) "
            f"{verdict.absent:.2f} (refuse at "
            f"{self.models['rules_unanswerable'].threshold:.2f})"
        )
        if verdict.outcome == "not_in_documents":
            return self.refusal(query, rules, s, verdict.absent, said, "")
        why = WHY_RULES_ANSWER if verdict.outcome == "answer" else _doubt(rules, WHY_RULES_NOT_SURE)
        return dataclasses.replace(
            quote,
            note=f"{said}; {rules.coverage.reason or 'covered'}",
            confidence=verdict.right,
            outcome=verdict.outcome,
            why=why,
        )

    def refusal(
        self, query: Query, rules: Rules, s: Settings, sure: float, said: str, judged: str
    ) -> Answer:
        """ "The documents don't say", with the rules' reason for it when they had one, and
        the reader's (`judged`) when it judged."""
        c = rules.coverage
        text = (
            rules.abstention.text if rules.abstention is not None else _dont_say((), s.collection)
        )
        plain = [x for x in (plain_reason(c) if c is not None else "", judged) if x]
        why = " ".join(plain) or "Nothing in the passages found answers the question."
        note = f"{said}; {c.reason}" if c is not None and c.reason else said
        return _abstain(query, text, note, sure, why)

    def assess(
        self,
        reader: Reader,
        query: Query,
        found: Retrieved,
        rules: Rules,
        retriever: Retriever,
        s: Settings,
    ) -> Judged | None:
        """The reader's verdicts on the best-ranked sentences, and the outcome they give; None
        when the reader gave no probabilities."""
        model = self.models["reader"]
        asked = self.for_reader(query, found, retriever, model.candidates)
        p = reader.judge(asked.question, asked.shown, model.stop_at, model.window, s.max_wait)
        if p is None:
            return None
        rule = tuple(e.score for e in asked.candidates[: len(p)])
        signals = rules.signals(tuple(p), found, len(p), model.choose(tuple(p), rule))
        return Judged(
            asked.units[: len(p)],
            tuple(p),
            signals,
            confidence_.decide(self.models, "reader", signals),
        )

    def for_reader(self, query: Query, found: Retrieved, retriever: Retriever, n: int) -> ForReader:
        """The `n` best-ranked sentences as the reader judges them: each with what quoting it
        would show (the next sentence of its paragraph, when that one finishes it) and the
        heading of its section. The reader cuts each to its window (rag.llm.reader.window)."""
        candidates = found.ranked[:n]
        units = [self.unit(query, ev, found, retriever) for ev in candidates]
        shown = [
            Candidate(" ".join(e.text for e in unit), _heading(ev, found))
            for ev, unit in zip(candidates, units, strict=True)
        ]
        return ForReader(query.search if query.history else query.text, candidates, units, shown)

    @staticmethod
    def shown(query: Query, unit: list[Evidence], found: Retrieved) -> list[Evidence]:
        """What the answer quotes for a judged unit: the unit, and for a compound question
        the best sentence of each other part."""
        if len(query.parts) == 1:
            return list(unit)
        held = {(e.doc_id, e.start) for e in unit}
        return list(unit) + [
            lead.sentence
            for lead in found.leads[1:]
            if (lead.sentence.doc_id, lead.sentence.start) not in held
        ]

    def unit(
        self, query: Query, ev: Evidence, found: Retrieved, retriever: Retriever
    ) -> list[Evidence]:
        """What quoting `ev` shows: it, and the next sentence of its paragraph when that one
        finishes or elaborates it."""
        lead = Lead(ev, retriever.next_sentence(ev))
        return compose.selection([lead], found.ranked, query.asking, other_doc=False)

    def judge(
        self,
        reader: Reader,
        query: Query,
        found: Retrieved,
        rules: Rules,
        retriever: Retriever,
        s: Settings,
        first: Answer,
    ) -> Answer:
        """The reader's outcome: the passage it judged answers, quoted; the best passage,
        marked not sure; or the documents don't say. A reader that fails, gives no
        probabilities or waits too long for its model leaves the rules' answer (`first`),
        saying so."""
        try:
            judged = self.assess(reader, query, found, rules, retriever, s)
        except ModelBusy as e:
            return _unchecked(first, s.max_wait, s.max_wait, str(e))
        except (ModelError, ValueError, RuntimeError) as e:
            log.info("the reader failed: %s", e)  # the answer's note says so
            judged, why = None, f"the reader failed ({e})"
        else:
            why = "the reader gave no probabilities"
        if judged is None:
            return dataclasses.replace(
                first,
                note=f"{first.note}; {why}, so the rules decided",
                why=f"{first.why} {WHY_NOT_CHECKED}".strip(),
            )
        verdict, chosen = judged.verdict, judged.signals.chosen
        tokens = getattr(reader, "tokens_read", None)
        read_ = f" ({tokens} tokens read)" if tokens else ""
        seen = tuple(compose.quoted(u).text for u in judged.units)
        n = len(judged.p)
        said = (
            f"the reader: P(yes) {', '.join(f'{p:.2f}' for p in judged.p)} for the "
            f"{n} best passage{'s' if n > 1 else ''}{read_}, passage {chosen + 1} "
            f"chosen; P(right) {verdict.right:.2f} (answer at "
            f"{self.models['reader'].threshold:.2f}), P(not in the documents) "
            f"{verdict.absent:.2f} (refuse at "
            f"{self.models['reader_unanswerable'].threshold:.2f})"
        )
        if verdict.outcome == "not_in_documents":
            judged_why = (
                "The reader model judged that none of the "
                f"{n} passages closest to the question answers it."
                if n > 1
                else "The reader model judged that the passage closest to the question "
                "does not answer it."
            )
            answer = self.refusal(query, rules, s, verdict.absent, said, judged_why)
            return dataclasses.replace(answer, judged=seen)
        rendered = compose.quoted(self.shown(query, judged.units[chosen], found))
        why = (
            WHY_READER_ANSWER if verdict.outcome == "answer" else _doubt(rules, WHY_READER_NOT_SURE)
        )
        return Answer(
            query.text,
            rendered.text,
            "extractive",
            tuple(rendered.citations),
            query.search,
            note=said,
            confidence=verdict.right,
            outcome=verdict.outcome,
            why=why,
            judged=seen,
        )

    def quote(self, query: Query, found: Retrieved) -> Answer:
        """The best sentences, quoted word for word."""
        text, cited = compose.quote(found.leads, found.ranked, query.asking)
        return Answer(
            query.text,
            text,
            "extractive",
            tuple(cited),
            query.search,
            note="quoted from the sources",
        )

    def rewrite(
        self, generator: Generator, prompt: Prompt, s: Settings, clock: _Clock
    ) -> abc.Generator[str, None, str | None]:
        """The model's rewrite, yielded piece by piece; returns the whole draft, or None when
        the model could not answer."""
        pieces = []
        try:
            for piece in generator.stream(prompt.messages, s.max_tokens, s.temperature):
                clock.mark("first_token_ms")
                pieces.append(piece)
                yield piece
        except (ValueError, RuntimeError) as e:  # llama.cpp refused the prompt: the quote stands
            log.warning("generation failed: %s", e)
            return None
        return "".join(pieces)

    def check(self, query: Query, draft: str, prompt: Prompt, quote: Answer) -> Answer:
        """The sentences of the model's rewrite that hold, with the quote's outcome and
        confidence (the rewrite is held to the passage the quote cites); else the quote as it
        was, its plain reason unchanged, and the note saying why the rewrite was dropped."""
        rendered, why = compose.checked(query, draft, prompt.evidence, self.checker)
        if rendered is None:
            return dataclasses.replace(
                quote, note=f"{quote.note}; the rewrite was not used ({why})"
            )
        return dataclasses.replace(
            quote,
            text=rendered.text,
            mode="generate",
            citations=tuple(rendered.citations),
            note=f"{quote.note}; rewritten, every sentence checked against its source",
            why=f"{quote.why} {WHY_REWRITTEN}".strip(),
        )

    # -- pieces ---------------------------------------------------------------------------
    def _retriever(self, method: str) -> Retriever:
        """One retriever per method, built when first asked for, over one index: read once,
        as an index swapped in meanwhile brings its own."""
        retrievers = self._retrievers
        if method not in retrievers:
            index = retrievers[self.settings.retrieval].index
            retrievers[method] = Retriever(index, self.embedder, method)
        return retrievers[method]

    def _best_cosine(self, query: Query, top: Evidence, index: Index) -> float:
        """How close the best evidence sentence is to the question, alone or with its context."""
        asked = self.embedder.embed([query.text, query.search])
        best = index.sentence_vector(top.doc_id, top.start)  # stored at index time
        if best is None:
            best = self.embedder.embed([top.text])[0]
        return float(max(asked @ best))

    def fit_prompt(
        self,
        query: Query,
        evidence: list[Evidence],
        s: Settings,
        generator: Generator | None = None,
    ) -> Prompt | None:
        """The prompt, within the model's context less the reply's `max_tokens`: the earlier
        question goes first, then the weakest sources; None when even the question and the
        best source do not fit (the quote is the answer then)."""
        gen = generator or self.generator
        budget = min(gen.context_tokens, s.n_ctx) - s.max_tokens - PROMPT_OVERHEAD
        history, evidence = list(query.history), list(evidence)
        while True:
            messages = self.messages(query.text, evidence, history)
            if sum(gen.count_tokens(m["content"]) for m in messages) <= budget:
                return Prompt(messages, evidence)
            if history:
                history = []
            elif len(evidence) > 1:
                evidence = evidence[:-1]
            else:
                return None

    def messages(
        self, question: str, evidence: list[Evidence], history: Sequence[str] = ()
    ) -> list[Message]:
        sources = "\n".join(
            f"[{i}] {' '.join(ev.text.split())}" for i, ev in enumerate(evidence, 1)
        )
        context = f"Earlier question: {history[-1]}\n" if history else ""
        return [
            {"role": "system", "content": SYSTEM_PROMPT},
            {"role": "user", "content": f"Sources:\n{sources}\n\n{context}Question: {question}"},
        ]


class _Clock:
    """Milliseconds since the question came in, for an answer's `timings`."""

    def __init__(self):
        self._start = time.perf_counter()
        self.marks: dict[str, float] = {}

    def ms(self) -> float:
        return (time.perf_counter() - self._start) * 1000

    def mark(self, name: str, ms: float | None = None) -> None:
        """Note when something first happened (later calls keep the first time)."""
        self.marks.setdefault(name, self.ms() if ms is None else ms)

    def since(self, name: str) -> float:
        return self.ms() - self.marks[name]

    def stamp(self, answer: Answer, generate_ms: float = 0.0, final: bool = True) -> Answer:
        """`answer` with its timings; the first answer stamped sets `first_answer_ms`."""
        now = self.ms()
        self.mark("first_answer_ms", now)
        timings = {**self.marks, "generate_ms": generate_ms, "total_ms": now}
        return dataclasses.replace(answer, timings=timings, final=final)


def _earlier(history: Sequence[str], s: Settings) -> list[str]:
    """Earlier questions: each was held to the question limit when it was asked."""
    return [h.strip()[: s.max_question_chars] for h in history if h and h.strip()]


def _abstain(
    query: Query, text: str, note: str, sure: float | None = None, why: str = ""
) -> Answer:
    return Answer(
        query.text,
        text,
        "abstained",
        (),
        query.search,
        note=note,
        confidence=sure,
        outcome="not_in_documents",
        why=why,
    )


def _doubt(rules: Rules, why: str) -> str:
    """`why`, after what the rules doubt (a word asked about that no document mentions, ...)."""
    doubt = plain_reason(rules.coverage) if rules.coverage is not None else ""
    return f"{doubt} {why}".strip()


def _unchecked(first: Answer, waited: float, bound: float, said: str = "") -> Answer:
    """The first answer as the final one, when the reader's verdict would wait too long."""
    said = said or f"the model would be free in about {waited:.0f} s"
    return dataclasses.replace(
        first,
        note=f"{first.note}; no verdict: {said}, more than the "
        f"{bound:.0f} s an answer may wait (max_wait)",
        why=f"{first.why} {WHY_BUSY}".strip(),
    )


def _heading(ev: Evidence, found: Retrieved) -> str:
    """The heading of the section a sentence sits in, to show the reader with it."""
    for p in found.passages:
        c = p.chunk
        if c.doc_id == ev.doc_id and c.start <= ev.start < c.end:
            return c.heading
    return ""


def _first(answer: Answer, evidence: list[Evidence]) -> list[Evidence]:
    """The sources for the rewrite: the sentence the answer quotes first, then the others."""
    if not answer.citations:
        return evidence
    c = answer.citations[0]
    quoted = Evidence(c.doc_id, c.title, c.source, c.start, c.end, c.quote, c.score)
    return [quoted, *[e for e in evidence if (e.doc_id, e.start) != (c.doc_id, c.start)]]


def _dont_say(missing: Sequence[str], collection: str = "", action: str = "") -> str:
    """The abstention, worded for any collection: "The documents don't say ..."; a named
    collection (Settings.collection) is named; a missing `action` ("how do I reset …") is
    said as one."""
    who = f"The documents in “{collection}”" if collection else "The documents"
    if action and tuple(missing) == (action,):
        return f"{who} don't say how to {action}."
    if missing:
        return f"{who} don't say anything about {', '.join(missing[:3])}."
    return f"{who} don't say."
