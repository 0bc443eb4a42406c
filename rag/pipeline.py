"""Question in, checked and cited `Answer` out. The question is read once (`rag.query`), then
four stages hand values down:

    retrieve  the chunks for the question, and the sentences in them that an answer may cite
    decide    does the evidence cover the question? no: abstain ("The documents don't say ...")
    answer    quote the best sentences; in generate mode the model then rewrites the quote
    check     every sentence of the rewrite against the source it cites; those that fail are
              dropped, and if none holds, the quote stands
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections import abc
from collections.abc import Iterator, Sequence
from typing import NamedTuple

from . import compose
from .embed import CachedEmbedder, Embedder
from .generate import Generator, Message
from .index import Index
from .query import Query, check_question, read
from .retrieve import Retrieved, Retriever
from .settings import Settings
from .types import Answer, Evidence
from .verify import Checker, coverage

log = logging.getLogger(__name__)

SYSTEM_PROMPT = (
    "You answer questions using only the numbered sources. "
    "Answer in one or two short sentences, copying the words of the sources. "
    "End each sentence with the number of its source in brackets, like [1]. "
    "If the sources do not answer the question, say: The documents don't say."
)

PROMPT_OVERHEAD = 48  # tokens the chat template adds around the messages

NAMES_NOTHING = ("The question names nothing to look up. Ask about something the documents "
                 "mention: a name, a thing, an event.")


class Prompt(NamedTuple):
    messages: list[Message]
    evidence: list[Evidence]  # the sources the prompt numbers, which the rewrite may cite


class Pipeline:
    def __init__(
        self,
        settings: Settings,
        index: Index,
        embedder: Embedder,
        generator: Generator | None = None,
    ):
        self.settings = settings
        self.embedder = embedder if isinstance(embedder, CachedEmbedder) else CachedEmbedder(embedder)
        self.generator = generator
        self.checker = Checker(self.embedder)
        self.set_index(index)

    def set_generator(self, generator: Generator | None) -> None:
        """Swap the LLM; an answer in progress keeps the one it started with."""
        self.generator = generator

    def set_index(self, index: Index) -> None:
        """Swap in an updated index (after documents are added or removed); an answer in
        progress keeps the index it started with."""
        self._retrievers = {self.settings.retrieval: Retriever(index, self.embedder,
                                                               self.settings.retrieval)}
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
        """Answer first: yields the checked quote (or the abstention) as soon as it is ready.
        In generate mode that first Answer has `final=False`; the model's rewrite follows as
        raw text pieces (for progress, never to be shown as the answer), then the final
        Answer: the sentences of the rewrite that passed the check, else the same quote."""
        s = self.settings.replace(**overrides) if overrides else self.settings
        clock = _Clock()
        query = read(check_question(question, s), _earlier(history, s))
        retriever, generator = self._retriever(s.retrieval), self.generator
        found = retriever.find(query, s.top_k, s.evidence_k)
        clock.mark("retrieve_ms")
        first = self.decide(query, found, retriever, s) or self.quote(query, found)
        prompt = None
        if not first.abstained and s.mode == "generate" and generator is not None:
            prompt = self.fit_prompt(query, found.evidence, s, generator)
            first = dataclasses.replace(first, note=(
                "quoted from the sources; the model is rewriting it" if prompt else
                "the question is too long for the model's context; quoting the sources"))
        yield clock.stamp(first, final=prompt is None)
        if prompt is None:
            return
        draft = yield from self.rewrite(generator, prompt, s, clock)
        generate_ms = clock.since("retrieve_ms")
        if draft is None:
            final = dataclasses.replace(first, note="the model could not answer; quoting the sources")
        else:
            final = self.check(query, draft, prompt, first)
        yield clock.stamp(final, generate_ms)

    # -- the stages -----------------------------------------------------------------------
    def retrieve(self, query: Query, s: Settings | None = None) -> Retrieved:
        """The passages, ranked sentences and numbered sources for `query`."""
        s = s or self.settings
        return self._retriever(s.retrieval).find(query, s.top_k, s.evidence_k)

    def decide(self, query: Query, found: Retrieved, retriever: Retriever,
               s: Settings) -> Answer | None:
        """The abstention, when the evidence cannot answer the question; None when it can."""
        if not found.evidence:
            why = ("the passages found hold only questions, instructions, code or titles; none "
                   "states anything to quote") if retriever.index.docs else "the index has no documents"
            return _abstain(query, _dont_say((), s.collection), why)
        if not query.terms.stems:
            return _abstain(query, NAMES_NOTHING, "no content words in the question")
        verdict = coverage(query.asking, found.evidence, found.text,
                           self._best_cosine(query, found.evidence[0], retriever.index),
                           retriever.vocabulary, self.embedder)
        if not verdict.covered:
            action = query.asking.asked_for if query.asking.how_to else ""
            return _abstain(query, _dont_say(verdict.missing, s.collection, action), verdict.reason)
        return None

    def quote(self, query: Query, found: Retrieved) -> Answer:
        """The best sentences, quoted word for word."""
        text, cited = compose.quote(found.leads, found.ranked, query.asking)
        return Answer(query.text, text, "extractive", tuple(cited), query.search,
                      note="quoted from the sources")

    def rewrite(self, generator: Generator, prompt: Prompt, s: Settings,
                clock: _Clock) -> abc.Generator[str, None, str | None]:
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
        """The sentences of the model's rewrite that hold, else the quote, saying why."""
        rendered, why = compose.checked(query, draft, prompt.evidence, self.checker)
        if rendered is None:
            return dataclasses.replace(quote, note=f"the model's answer failed the check ({why}); "
                                       "quoting the sources instead")
        return Answer(query.text, rendered.text, "generate", tuple(rendered.citations),
                      query.search, note="every sentence checked against its source")

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

    def fit_prompt(self, query: Query, evidence: list[Evidence], s: Settings,
                   generator: Generator | None = None) -> Prompt | None:
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

    def messages(self, question: str, evidence: list[Evidence], history: Sequence[str] = ()) -> list[Message]:
        sources = "\n".join(f"[{i}] {' '.join(ev.text.split())}" for i, ev in enumerate(evidence, 1))
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


def _abstain(query: Query, text: str, why: str) -> Answer:
    return Answer(query.text, text, "abstained", (), query.search, note=why)


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
