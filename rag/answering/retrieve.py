"""Find the chunks for a question (dense + BM25, fused by reciprocal rank), then the sentences
inside them that an answer may cite, scored: `Retriever.find(query, ...)` does both for every
part of the question."""

from __future__ import annotations

import bisect
import functools
import logging
import re
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from itertools import zip_longest
from typing import NamedTuple

import numpy as np

from ..indexing.embed import Embedder
from ..indexing.index import Index
from ..reading.chunking import search_text
from ..reading.form import asks_for_form, form
from ..reading.sentences import same_paragraph
from ..reading.terms import STOPWORDS, TOKEN_PATTERN, initialisms, stem, text_stems
from ..types import Document, Evidence, Lead, Passage
from .query import Ask, Query

log = logging.getLogger(__name__)

RRF_K = 60
# sentences that address the model rather than state anything, and questions (which assert
# nothing): never offered as evidence
_INSTRUCTION = re.compile(
    r"\b(ignore|disregard|forget)\b.{0,20}\b(instructions?|prompts?|rules)\b|"
    r"^\W*(system|assistant|user)\s*:|\bnew instructions\b|"
    r"\bfrom now on\b.{0,20}\b(answer|reply|respond|say)\b",
    re.IGNORECASE,
)
# evidence sentence scoring: one weight per signal (tuned by hand on the news questions with
# `rag eval --compare`; bench/fit_scorer.py measures fitted weights against these)
SIGNALS = ("cos", "cos_ctx", "cos_query", "lex", "type_fit", "rank_prior")
WEIGHTS = (0.7, 0.5, 0.2, 0.5, 0.5, 0.04)


class Candidate(NamedTuple):
    """A sentence of a retrieved passage that may become evidence."""

    rank: int  # of its passage
    doc: Document
    start: int
    end: int
    text: str
    in_context: str  # the sentence read after the one before it (or after its heading)


@dataclass(frozen=True)
class Retrieved:
    passages: list[Passage]
    ranked: list[Evidence]  # every sentence of the passages, best first
    evidence: list[Evidence]  # the numbered sources the model sees
    leads: list[Lead]  # the best sentence for each part of the question

    @property
    def text(self) -> str:
        """The passages' text, joined: what a question's words are looked for in."""
        return " ".join(p.chunk.text for p in self.passages)


def _asks_or_instructs(sentence: str) -> bool:
    return sentence.rstrip("”\"’' ").endswith("?") or bool(_INSTRUCTION.search(sentence))


class _Bm25:
    """BM25 over the chunks, tokenized by bm25s with the engine's own words: the `terms`
    token pattern, STOPWORDS and stem. bm25s's defaults (its `\\w\\w+` split, NLTK stopwords,
    Snowball) were measured against them with `rag eval`: BM25 alone found the gold passage
    for 76.8% of held-out questions against 79.3% with these words; in hybrid retrieval the
    two were within a question per corpus. So the engine's words stay, one definition for
    retrieval and checks alike."""

    def __init__(self, texts: list[str]):
        import bm25s

        logging.getLogger("bm25s").setLevel(logging.WARNING)
        self._bm25s = bm25s
        self.n = len(texts)
        self.model = bm25s.BM25()
        if texts:
            self.model.index(self._tokenize(texts), show_progress=False)

    def _tokenize(self, texts: list[str]) -> list[list[str]]:
        tokenized = self._bm25s.tokenize(
            texts,
            token_pattern=TOKEN_PATTERN,
            stopwords=sorted(STOPWORDS),
            stemmer=_stems,
            return_ids=False,
            show_progress=False,
        )
        return [words or ["_"] for words in tokenized]  # a text of stopwords keeps its place

    def search(self, query: str, k: int) -> tuple[np.ndarray, np.ndarray]:
        if not self.n:
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        k = min(k, self.n)
        ids, scores = self.model.retrieve(
            self._tokenize([query]), k=k, show_progress=False, n_threads=1
        )
        return ids[0].astype(np.int64), scores[0].astype(np.float32)


def _stems(words: list[str]) -> list[str]:
    return [stem(w) for w in words]


def chunk_search_text(index: Index, i: int) -> str:
    c = index.chunks[i]
    return search_text(index.docs[c.doc_id].doc.title, c)


class _Vocabulary(Collection[str]):
    """Every stem of an index's documents, and the initials of their capitalised names (so an
    acronym asked about, "GFDL", is found in "GNU Free Documentation License"), read on first
    use. Only a reason that names a term missing from the passages found asks, so most
    questions never pay for a pass over every document (about 0.7 s per million characters)."""

    def __init__(self, index: Index):
        self._index = index

    @functools.cached_property
    def _stems(self) -> frozenset[str]:
        return frozenset().union(
            *(text_stems(e.doc.text) | initialisms(e.doc.text) for e in self._index.docs.values())
        )

    def __contains__(self, stem_: object) -> bool:
        return stem_ in self._stems

    def __iter__(self) -> Iterator[str]:
        return iter(self._stems)

    def __len__(self) -> int:
        return len(self._stems)


class Retriever:
    """Hybrid retrieval over one loaded index."""

    def __init__(self, index: Index, embedder: Embedder, method: str = "hybrid"):
        self.index, self.embedder, self.method = index, embedder, method
        self._bm25: _Bm25 | None = None
        self._idf: dict[str, float] | None = None
        # every stem in the collection's documents: what "not in the documents" means
        self.vocabulary = _Vocabulary(index)
        self._sentences: dict[str, list[tuple[int, int]]] | None = None

    @property
    def bm25(self) -> _Bm25:
        if self._bm25 is None:
            self._bm25 = _Bm25(
                [chunk_search_text(self.index, i) for i in range(len(self.index.chunks))]
            )
        return self._bm25

    @property
    def idf(self) -> dict[str, float]:
        """Inverse document frequency of each stem over chunks, for weighting question words."""
        if self._idf is None:
            df: dict[str, int] = {}
            for c in self.index.chunks:
                for s in text_stems(c.text):
                    df[s] = df.get(s, 0) + 1
            n = max(1, len(self.index.chunks))
            self._idf = {s: float(np.log(1 + n / d)) for s, d in df.items()}
        return self._idf

    def retrieve(self, query: str, k: int, qvec: np.ndarray | None = None) -> list[Passage]:
        if not self.index.chunks:
            return []
        depth = max(k * 4, 20)
        fused: dict[int, float] = {}
        if self.method in ("hybrid", "dense"):
            qvec = self.embedder.embed([query]) if qvec is None else qvec.reshape(1, -1)
            scores, ids = self.index.search(qvec, depth)
            for rank, (i, s) in enumerate(zip(ids[0], scores[0], strict=True)):
                if i < 0:
                    continue
                fused[int(i)] = fused.get(int(i), 0.0) + (
                    1.0 / (RRF_K + rank) if self.method == "hybrid" else float(s)
                )
        if self.method in ("hybrid", "bm25"):
            ids, scores = self.bm25.search(query, depth)
            for rank, (i, s) in enumerate(zip(ids, scores, strict=True)):
                if self.method == "bm25" and s <= 0:
                    continue
                fused[int(i)] = fused.get(int(i), 0.0) + (
                    1.0 / (RRF_K + rank) if self.method == "hybrid" else float(s)
                )
        best = sorted(fused.items(), key=lambda kv: -kv[1])[:k]
        return [Passage(self.index.chunks[i], score) for i, score in best]

    def find(self, query: Query, top_k: int, evidence_k: int) -> Retrieved:
        """Retrieval for one question. A compound question is searched part by part, and its
        numbered sources take turns between the parts, so that every part gets some."""
        passages: list[Passage] = []
        rankings = []
        for part in query.parts:
            found = self.retrieve(part.search, top_k)
            passages += [p for p in found if p.chunk not in [q.chunk for q in passages]]
            rankings.append(self.evidence(part, found))
        leads = [
            Lead(ranking[0], self.next_sentence(ranking[0])) for ranking in rankings if ranking
        ]
        evidence: list[Evidence] = []
        for row in zip_longest(*rankings):
            for ev in row:
                if ev is not None and all(
                    (ev.doc_id, ev.start) != (e.doc_id, e.start) for e in evidence
                ):
                    evidence.append(ev)
        k = evidence_k + len(query.parts) - 1
        ranked = sorted(evidence, key=lambda e: -e.score)
        return Retrieved(passages, ranked, evidence[:k], leads)

    def evidence(self, ask: Ask, passages: list[Passage]) -> list[Evidence]:
        """Every sentence inside `passages`, scored as an answer to `ask`, best first.

        A sentence scores by its cosine to the question, alone and read after the sentence
        before it (so "he said" and "these efforts" carry their referents); plus the
        idf-weighted share of the question's content words it holds; plus a bonus when it has
        the kind of answer the question wants (a number for "how many"); plus a little for its
        passage's rank. What retrieval searched for (the question with its conversation)
        counts a little too.
        """
        candidates, x = self.signals(ask, passages)
        scores = x @ np.array(WEIGHTS, dtype=np.float64) if len(candidates) else []
        out = [
            Evidence(c.doc.doc_id, c.doc.title, c.doc.source, c.start, c.end, c.text, float(score))
            for c, score in zip(candidates, scores, strict=True)
        ]
        out.sort(key=lambda ev: -ev.score)
        return out

    def signals(self, ask: Ask, passages: list[Passage]) -> tuple[list[Candidate], np.ndarray]:
        """The candidate sentences of `passages` and, per candidate, the SIGNALS row that
        scores it: cosines (alone, in context, against the search), the idf-weighted share of
        the question's content words, a match of the answer type, the passage rank."""
        seen, candidates = set(), []
        prose_only = not asks_for_form(ask.text)  # code and titles answer only when asked for
        for rank, p in enumerate(passages):
            doc = self.index.docs[p.chunk.doc_id].doc
            before = p.chunk.heading
            for start, end in p.chunk.sentences:
                text = doc.text[start:end]
                if (
                    (doc.doc_id, start) not in seen
                    and not _asks_or_instructs(text)
                    and not (prose_only and form(text) != "prose")
                ):
                    seen.add((doc.doc_id, start))
                    candidates.append(
                        Candidate(rank, doc, start, end, text, f"{before} {text}".strip())
                    )
                before = text
        if not candidates:
            return [], np.zeros((0, len(SIGNALS)))
        vecs = self.embedder.embed([ask.text, ask.search or ask.text])
        alone, in_context = self._sentence_vectors(candidates)
        cos = alone @ vecs[0]
        cos_ctx = in_context @ vecs[0]
        cos_query = np.maximum(alone @ vecs[1], in_context @ vecs[1])
        wanted = ask.answer_type
        strength = 1.0 if wanted.required else 0.5
        counted = stem(wanted.counted) if wanted.counted else ""
        weights = {st: self.idf.get(st, 1.0) for st in ask.terms.stems}
        total = sum(weights.values()) or 1.0
        rows = []
        for i, c in enumerate(candidates):
            have = text_stems(c.text)
            lex = sum(w for st, w in weights.items() if st in have) / total
            fits = (
                wanted.kind != "any"
                and wanted.satisfied_by(c.text)
                and (not counted or counted in have)
            )
            rows.append((cos[i], cos_ctx[i], cos_query[i], lex, strength * fits, 1 / (1 + c.rank)))
        return candidates, np.array(rows, dtype=np.float64)

    def _sentence_vectors(self, candidates: list[Candidate]) -> tuple[np.ndarray, np.ndarray]:
        """Each candidate's vector alone and read in context. The index stores every
        sentence's vector, so nothing is embedded here; "in context" is the normalized sum of
        the sentence's vector and the one before it in its document (so "he said" keeps its
        speaker). An index built in memory without sentence vectors embeds them instead."""
        stored = [self.index.sentence_vector(c.doc.doc_id, c.start) for c in candidates]
        if any(v is None for v in stored):
            return (
                self.embedder.embed([c.text for c in candidates]),
                self.embedder.embed([c.in_context for c in candidates]),
            )
        alone = np.stack(stored)
        summed = []
        for c, v in zip(candidates, alone, strict=True):
            prev = self._previous(c.doc.doc_id, c.start)
            pv = self.index.sentence_vector(c.doc.doc_id, prev) if prev is not None else None
            summed.append(v if pv is None else v + pv)
        in_context = np.stack(summed)
        in_context /= np.maximum(np.linalg.norm(in_context, axis=1, keepdims=True), 1e-12)
        return alone, in_context

    def _spans(self, doc_id: str) -> list[tuple[int, int]]:
        if self._sentences is None:
            by_doc: dict[str, set[tuple[int, int]]] = {}
            for c in self.index.chunks:
                by_doc.setdefault(c.doc_id, set()).update(c.sentences)
            self._sentences = {d: sorted(v) for d, v in by_doc.items()}
        return self._sentences.get(doc_id, [])

    def _previous(self, doc_id: str, start: int) -> int | None:
        """The start of the sentence before the one at `start`, in the same section."""
        spans = self._spans(doc_id)
        i = bisect.bisect_left(spans, (start, -1))
        if i == 0:
            return None
        prev = spans[i - 1]
        text = self.index.docs[doc_id].doc.text
        gap = text[prev[1] : start]
        return None if gap.count("\n") > 2 or "#" in gap else prev[0]

    def next_sentence(self, ev: Evidence) -> Evidence | None:
        """The sentence after `ev` in its paragraph, if any (score 0: it was not ranked)."""
        spans = self._spans(ev.doc_id)
        i = bisect.bisect_right(spans, (ev.start, ev.end))
        if i >= len(spans):
            return None
        start, end = spans[i]
        doc = self.index.docs[ev.doc_id].doc
        if not same_paragraph(doc.text, ev.end, start):
            return None
        return Evidence(ev.doc_id, ev.title, ev.source, start, end, doc.text[start:end], 0.0)
