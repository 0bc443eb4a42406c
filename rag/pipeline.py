"""Question in, checked and cited `Answer` out.

    retrieve chunks -> pick evidence sentences -> does the evidence cover the question?
      no  -> abstain ("The documents don't say ...")
      yes -> the model answers from numbered sources; every sentence is checked against the
             sources it cites; if none survives, the best evidence sentences are the answer.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from itertools import zip_longest

import numpy as np

from . import compose
from .chunking import split_sentences
from .embed import CachedEmbedder, Embedder
from .errors import InputError
from .generate import Generator, Message
from .language import foreign_language
from .retrieve import Retriever
from .settings import Settings
from .store import Index
from .terms import STOPWORDS, content_stems, text_stems, tokens
from .types import Answer, Evidence, Passage
from .verify import Checker, coverage, fuzzy_in

log = logging.getLogger(__name__)

SYSTEM_PROMPT = (
    "You answer questions using only the numbered sources. "
    "Answer in one or two short sentences, copying the words of the sources. "
    "End each sentence with the number of its source in brackets, like [1]. "
    "If the sources do not answer the question, say: The documents don't say."
)

PROMPT_OVERHEAD = 48  # tokens the chat template adds around the messages

_FOLLOW_UP = re.compile(
    r"\b(he|she|him|his|her|they|them|their|it|its|this|that|these|those|there|then|"
    r"the same|also|too|instead|else|other)\b|^(and|but|so|what about|how about)\b",
    re.IGNORECASE,
)


def check_question(question: str, settings: Settings) -> str:
    q = (question or "").strip()
    if not q:
        raise InputError("the question is empty: type a question about the documents")
    if len(q) > settings.max_question_chars:
        raise InputError(
            f"the question is {len(q):,} characters long; keep it under "
            f"{settings.max_question_chars:,} (RAG_MAX_QUESTION_CHARS)"
        )
    if not any(ch.isalnum() for ch in q):
        raise InputError("the question has no words to search for: ask about the documents")
    language = foreign_language(q)
    if language:
        written = f"is written in {language}" if language.endswith("script") else (
            "is not" if language == "another language" else f"reads as {language}")
        raise InputError(f"ask in English: the embedding model and the answer checks read "
                         f"English only, and this question {written}")
    return q


def asking_part(question: str) -> str:
    """The part of a question that asks: its sentences that end in "?" (else its last), without
    asides in brackets. Names in the rest ("My colleague Priya asked me this on Tuesday.") are
    mentioned in passing, and their absence from the documents is no reason to refuse. When
    the asking sentence points back ("What did he say about it?"), the whole question asks.

    >>> asking_part("I heard this from Priya. Where will they meet (in person)?")
    'I heard this from Priya. Where will they meet?'
    >>> asking_part("I read about the summit over lunch. Where will the leaders meet?")
    'Where will the leaders meet?'
    """
    plain = re.sub(r"\s*\([^()]*\)", "", question).strip() or question
    sentences = [plain[sp.start : sp.end] for sp in split_sentences(plain)]
    asks = [x for x in sentences if x.rstrip().endswith("?")] or sentences[-1:]
    if len(asks) == len(sentences) or any(_FOLLOW_UP.search(x) for x in asks):
        return plain
    return " ".join(asks)


def retrieval_query(question: str, history: Sequence[str]) -> str:
    """A follow-up ("What did he say about China?") is searched together with the question
    before it; a question that stands on its own is searched alone."""
    if not history:
        return question
    previous = history[-1].strip()
    if _FOLLOW_UP.search(question) or len(content_stems(question)) <= 1:
        return f"{previous} {question}"
    return question


@dataclass(frozen=True)
class Retrieved:
    query: str  # what retrieval searched for (the question with its context, for follow-ups)
    passages: list[Passage]
    ranked: list[Evidence]  # every sentence of the passages, best first
    evidence: list[Evidence]  # the numbered sources the model sees
    leads: list[Evidence]  # the best sentence for each part of the question


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
        """Swap in an updated index (after documents are added or removed)."""
        self.index = index
        self.retriever = Retriever(index, self.embedder, self.settings.retrieval)
        self._stems: tuple[Index, set[str]] | None = None  # the collection's stems, when needed

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
        Answer: the rewrite if every sentence of it passed the check, else the same quote."""
        s = self.settings.replace(**overrides) if overrides else self.settings
        t0 = time.perf_counter()
        question = check_question(question, s)
        # earlier questions: each was held to the question limit when it was asked
        history = [h.strip()[: s.max_question_chars] for h in history if h and h.strip()]
        r = self.gather(question, history, s)
        t_retrieved = time.perf_counter()
        timings = {"retrieve_ms": (t_retrieved - t0) * 1000}

        def done(rendered, mode, note="", generate_ms=0.0, final=True):
            text, cited = rendered
            now = (time.perf_counter() - t0) * 1000
            timings.setdefault("first_answer_ms", now)
            timings["generate_ms"] = generate_ms
            timings["total_ms"] = now
            return Answer(question, text, mode, tuple(cited), r.query, dict(timings), note, final)

        if not r.evidence:
            why = ("the passages found only ask questions or give instructions; none states "
                   "anything to quote") if self.index.docs else "the index has no documents"
            yield done((_dont_say((), s.collection), []), "abstained", why)
            return
        if not content_stems(question):
            text = ("The question names nothing to look up. Ask about something the documents "
                    "mention: a name, a thing, an event.")
            yield done((text, []), "abstained", "no content words in the question")
            return
        top = r.evidence[0]
        q = self.embedder.embed([question, r.query])
        e = self.index.sentence_vector(top.doc_id, top.start)  # stored at index time
        if e is None:
            e = self.embedder.embed([top.text])[0]
        best_cos = float(max(q[0] @ e, q[1] @ e))
        retrieved = " ".join(p.chunk.text for p in r.passages)
        cov = coverage(asking_part(question), r.evidence, retrieved, best_cos,
                       lambda word: self._closest_word(word, retrieved), self._in_collection)
        if not cov.covered:
            yield done((_dont_say(cov.missing, s.collection), []), "abstained", cov.reason)
            return
        quoted = compose.extractive(r.leads, r.ranked, self.retriever.next_sentence)
        if s.mode != "generate" or self.generator is None:
            yield done(quoted, "extractive", "quoted from the sources")
            return
        fitted = self.fit_prompt(question, r.evidence, history, s)
        if fitted is None:
            yield done(quoted, "extractive", "the question is too long for the model's context; "
                       "quoting the sources")
            return
        messages, evidence = fitted
        yield done(quoted, "extractive", "quoted from the sources; the model is rewriting it",
                   final=False)
        draft = ""
        try:
            for piece in self.generator.stream(messages, s.max_tokens, s.temperature):
                timings.setdefault("first_token_ms", (time.perf_counter() - t0) * 1000)
                draft += piece
                yield piece
        except (ValueError, RuntimeError) as e:  # llama.cpp refused the prompt: the quote stands
            log.warning("generation failed: %s", e)
            yield done(quoted, "extractive", "the model could not answer; quoting the sources",
                       (time.perf_counter() - t_retrieved) * 1000)
            return
        gen_ms = (time.perf_counter() - t_retrieved) * 1000
        rendered, why = compose.checked(question, draft, evidence, self.checker)
        if rendered is not None:
            yield done(rendered, "generated", "every sentence checked against its source", gen_ms)
        else:
            yield done(quoted, "extractive", f"the model's answer failed the check ({why}); "
                       "quoting the sources instead", gen_ms)

    # -- pieces ---------------------------------------------------------------------------
    def gather(self, question: str, history: Sequence[str], s: Settings) -> Retrieved:
        """Retrieval for one question. A compound question is searched part by part."""
        retriever = self.retriever
        if s.retrieval != retriever.method:
            retriever = Retriever(self.index, self.embedder, s.retrieval)
        query = retrieval_query(question, history)
        parts = compose.split_parts(question)
        passages: list[Passage] = []
        rankings = []
        for part in parts:
            part_query = query if len(parts) == 1 else retrieval_query(part, history)
            found = retriever.retrieve(part_query, s.top_k)
            passages += [p for p in found if p.chunk not in [q.chunk for q in passages]]
            rankings.append(retriever.evidence(part, found, part_query))
        leads = [ranking[0] for ranking in rankings if ranking]
        evidence: list[Evidence] = []
        for row in zip_longest(*rankings):  # interleave, so every part gets sources
            for ev in row:
                if ev is not None and all((ev.doc_id, ev.start) != (e.doc_id, e.start) for e in evidence):
                    evidence.append(ev)
        k = s.evidence_k + len(parts) - 1
        ranked = sorted(evidence, key=lambda e: -e.score)
        return Retrieved(query, passages, ranked, evidence[:k], leads)

    def _in_collection(self, term: str) -> bool:
        """Whether a stem (or a close form of it) occurs in any indexed document."""
        index = self.index  # an index swapped in meanwhile gets its own set
        if self._stems is None or self._stems[0] is not index:
            self._stems = (index, set().union(*(text_stems(e.doc.text) for e in index.docs.values())))
        return fuzzy_in(term, self._stems[1])

    def _closest_word(self, word: str, text: str) -> float:
        """The highest cosine between `word` and any word of `text` (a synonym test)."""
        words = sorted({t.lower() for t in tokens(text) if t.lower() not in STOPWORDS})
        if not words:
            return 0.0
        vecs = self.embedder.embed([word.lower(), *words])
        return float(np.max(vecs[1:] @ vecs[0]))

    def fit_prompt(self, question: str, evidence: list[Evidence], history: Sequence[str],
                   s: Settings) -> tuple[list[Message], list[Evidence]] | None:
        """The prompt, within the model's context less the reply's `max_tokens`: the earlier
        question goes first, then the weakest sources; None when even the question and the
        best source do not fit (the quote is the answer then)."""
        gen = self.generator
        budget = min(gen.context_tokens, s.n_ctx) - s.max_tokens - PROMPT_OVERHEAD
        history, evidence = list(history), list(evidence)
        while True:
            messages = self.messages(question, evidence, history)
            if sum(gen.count_tokens(m["content"]) for m in messages) <= budget:
                return messages, evidence
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


def _dont_say(missing: Sequence[str], collection: str = "") -> str:
    """The abstention, worded for any collection: "The documents don't say ..."; a named
    collection (Settings.collection) is named."""
    who = f"The documents in “{collection}”" if collection else "The documents"
    if missing:
        return f"{who} don't say anything about {', '.join(missing[:3])}."
    return f"{who} don't say."
