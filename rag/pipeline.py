"""Question in, checked and cited `Answer` out.

    retrieve chunks -> pick evidence sentences -> does the evidence cover the question?
      no  -> abstain ("The articles don't say ...")
      yes -> the model answers from numbered sources; every sentence is checked against the
             sources it cites; if none survives, the best evidence sentences are the answer.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterator, Sequence

from .chunking import split_sentences
from .embed import CachedEmbedder, Embedder
from .errors import InputError
from .generate import Generator, Message
from .retrieve import Retriever
from .settings import Settings
from .store import Index
from .terms import content_stems, text_stems
from .types import Answer, Citation, Evidence
from .verify import Checker, coverage, split_markers

log = logging.getLogger(__name__)

SYSTEM_PROMPT = (
    "You answer questions about news articles. Use only the numbered sources. "
    "Answer in one or two short sentences, copying the words of the sources. "
    "End each sentence with the number of its source in brackets, like [1]. "
    "If the sources do not answer the question, say: The articles don't say."
)

_FOLLOW_UP = re.compile(
    r"\b(he|she|him|his|her|they|them|their|it|its|this|that|these|those|there|then|"
    r"the same|also|too|instead|else|other)\b|^(and|but|so|what about|how about)\b",
    re.IGNORECASE,
)


def check_question(question: str, settings: Settings) -> str:
    q = (question or "").strip()
    if not q:
        raise InputError("the question is empty: type a question about the articles")
    if len(q) > settings.max_question_chars:
        raise InputError(
            f"the question is {len(q):,} characters long; keep it under "
            f"{settings.max_question_chars:,} (RAG_MAX_QUESTION_CHARS)"
        )
    if not content_stems(q) and not any(ch.isdigit() for ch in q):
        raise InputError("the question has no words to search for: ask about the articles")
    return q


def retrieval_query(question: str, history: Sequence[str]) -> str:
    """A follow-up ("What did he say about China?") is searched together with the question
    before it; a question that stands on its own is searched alone."""
    if not history:
        return question
    previous = history[-1].strip()
    if _FOLLOW_UP.search(question) or len(content_stems(question)) <= 2:
        return f"{previous} {question}"
    return question


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

    def set_index(self, index: Index) -> None:
        """Swap in an updated index (after documents are added or removed)."""
        self.index = index
        self.retriever = Retriever(index, self.embedder, self.settings.retrieval)

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
        """Yields the model's raw text as it is generated (a draft), then the checked Answer."""
        s = self.settings.replace(**overrides) if overrides else self.settings
        t0 = time.perf_counter()
        question = check_question(question, s)
        query, qvec, passages, evidence, retriever = self.gather(question, history, s)
        t_retrieved = time.perf_counter()
        timings = {"retrieve_ms": (t_retrieved - t0) * 1000}

        def done(text, mode, cited, note="", generate_ms=0.0):
            timings["generate_ms"] = generate_ms
            timings["total_ms"] = (time.perf_counter() - t0) * 1000
            return Answer(question, text, mode, tuple(cited), query, dict(timings), note)

        if not evidence:
            yield done(_dont_say(()), "abstained", [], "the index has no documents")
            return
        v = self.embedder.embed([evidence[0].text, question, query])
        best_cos = float(max(v[1] @ v[0], v[2] @ v[0]))
        retrieved = " ".join(p.chunk.text for p in passages)
        cov = coverage(question, evidence, retrieved, best_cos)
        if not cov.covered:
            yield done(_dont_say(cov.missing), "abstained", [], cov.reason)
            return

        if s.mode == "generate" and self.generator is not None:
            draft = ""
            first_token = None
            for piece in self.generator.stream(self.messages(question, evidence, history),
                                               s.max_tokens, s.temperature):
                if first_token is None:
                    first_token = time.perf_counter()
                    timings["first_token_ms"] = (first_token - t0) * 1000
                draft += piece
                yield piece
            gen_ms = (time.perf_counter() - t_retrieved) * 1000
            text, cited, rejected = self._checked(question, draft, evidence)
            if text:
                yield done(text, "generated", cited, "every sentence checked against its source", gen_ms)
                return
            note = f"the model's answer failed the check ({rejected or 'empty'}); quoting the sources"
            yield done(*self._extractive(question, evidence), note=note, generate_ms=gen_ms)
            return
        yield done(*self._extractive(question, evidence), note="quoted from the sources")

    # -- pieces ---------------------------------------------------------------------------
    def gather(self, question: str, history: Sequence[str], s: Settings):
        """Retrieval for one question: (query, query vector, passages, evidence, retriever)."""
        query = retrieval_query(question, [h for h in history if h and h.strip()])
        qvec = self.embedder.embed([query])
        retriever = self.retriever
        if s.retrieval != retriever.method:
            retriever = Retriever(self.index, self.embedder, s.retrieval)
        passages = retriever.retrieve(query, s.top_k, qvec)
        evidence = retriever.evidence(question, passages, s.evidence_k, query)
        return query, qvec, passages, evidence, retriever

    def messages(self, question: str, evidence: list[Evidence], history: Sequence[str] = ()) -> list[Message]:
        sources = "\n".join(f"[{i}] {ev.text}" for i, ev in enumerate(evidence, 1))
        context = f"Earlier question: {history[-1]}\n" if history else ""
        return [
            {"role": "system", "content": SYSTEM_PROMPT},
            {"role": "user", "content": f"Sources:\n{sources}\n\n{context}Question: {question}"},
        ]

    def _checked(self, question: str, draft: str, evidence: list[Evidence]):
        """Keep the draft's sentences that the evidence supports, with renumbered markers."""
        kept: list[tuple[str, tuple[int, ...]]] = []
        reasons = []
        for span in split_sentences(draft):
            raw = draft[span.start : span.end]
            plain, ns = split_markers(raw)
            if not plain or "don't say" in plain.lower() or "do not say" in plain.lower():
                continue
            sup = self.checker.support(plain, evidence, ns)
            if sup.ok and plain not in [k[0] for k in kept]:
                kept.append((plain, sup.cited))
            elif not sup.ok:
                reasons.append(sup.reason)
        if not kept:
            return "", [], "; ".join(dict.fromkeys(reasons))
        # an answer must speak to the question, not just repeat a true but unrelated sentence
        answer_stems = set().union(*(text_stems(k[0]) for k in kept))
        if not content_stems(question) & answer_stems:
            return "", [], "it does not address the question"
        return _render(kept, evidence)

    def _extractive(self, question: str, evidence: list[Evidence]):
        """The best evidence sentence, and a second one if it covers more of the question."""
        chosen = [evidence[0]]
        q = content_stems(question)
        covered = text_stems(evidence[0].text) & q
        for ev in evidence[1:]:
            new = (text_stems(ev.text) & q) - covered
            if new and ev.score >= 0.8 * evidence[0].score:
                chosen.append(ev)
                covered |= new
                break
        kept = [(ev.text, (evidence.index(ev) + 1,)) for ev in chosen]
        text, cited, _ = _render(kept, evidence)
        return text, "extractive", cited


def _render(kept, evidence):
    order: dict[int, int] = {}
    parts = []
    for text, ns in kept:
        for n in ns:
            order.setdefault(n, len(order) + 1)
        text = text.rstrip()
        parts.append(f"{text} " + "".join(f"[{order[n]}]" for n in ns))
    cited = [Citation.from_evidence(new, evidence[old - 1]) for old, new in order.items()]
    return " ".join(parts), cited, ""


def _dont_say(missing: Sequence[str]) -> str:
    if missing:
        return f"The articles don't say anything about {', '.join(missing[:3])}."
    return "The articles don't say."
