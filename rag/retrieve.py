"""Find the chunks for a question (dense + BM25, fused by reciprocal rank), then the sentences
inside them that an answer may cite."""

from __future__ import annotations

import bisect
import logging
import re

import numpy as np

from .answer_type import want
from .chunking import search_text
from .embed import Embedder
from .store import Index
from .terms import STOPWORDS, content_stems, stem, text_stems, tokens
from .types import Evidence, Passage

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


def _asks_or_instructs(sentence: str) -> bool:
    return sentence.rstrip("”\"’' ").endswith("?") or bool(_INSTRUCTION.search(sentence))


class _Bm25:
    def __init__(self, texts: list[str]):
        import bm25s

        logging.getLogger("bm25s").setLevel(logging.WARNING)
        self._bm25s = bm25s
        self.n = len(texts)
        self.model = bm25s.BM25()
        if texts:
            self.model.index(self._tokenize(texts), show_progress=False)

    @staticmethod
    def _tokenize(texts: list[str]) -> list[list[str]]:
        return [[stem(t) for t in _words(x)] or ["_"] for x in texts]

    def search(self, query: str, k: int) -> tuple[np.ndarray, np.ndarray]:
        if not self.n:
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        q = [stem(t) for t in _words(query)] or ["_"]
        k = min(k, self.n)
        ids, scores = self.model.retrieve([q], k=k, show_progress=False, n_threads=1)
        return ids[0].astype(np.int64), scores[0].astype(np.float32)


def _words(text: str) -> list[str]:
    return [t for t in tokens(text) if t.lower() not in STOPWORDS]


def chunk_search_text(index: Index, i: int) -> str:
    c = index.chunks[i]
    return search_text(index.docs[c.doc_id].doc.title, c)


class Retriever:
    """Hybrid retrieval over one loaded index."""

    def __init__(self, index: Index, embedder: Embedder, method: str = "hybrid"):
        self.index, self.embedder, self.method = index, embedder, method
        self._bm25: _Bm25 | None = None
        self._idf: dict[str, float] | None = None
        self._sentences: dict[str, list[tuple[int, int]]] | None = None

    @property
    def bm25(self) -> _Bm25:
        if self._bm25 is None:
            self._bm25 = _Bm25([chunk_search_text(self.index, i) for i in range(len(self.index.chunks))])
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

    def evidence(
        self,
        question: str,
        passages: list[Passage],
        query: str = "",
    ) -> list[Evidence]:
        """Every sentence inside `passages`, scored as an answer to `question`, best first.

        A sentence scores by its cosine to the question, alone and read after the sentence
        before it (so "he said" and "these efforts" carry their referents); plus the
        idf-weighted share of the question's content words it holds; plus a bonus when it has
        the kind of answer the question wants (a number for "how many"); plus a little for its
        passage's rank. `query` (the question with its conversation) counts a little too.
        """
        cands, x = self.signals(question, passages, query)
        scores = x @ np.array(WEIGHTS, dtype=np.float64) if len(cands) else []
        out = [Evidence(doc.doc_id, doc.title, doc.source, s, e, text, float(score))
               for (rank, doc, s, e, text, _), score in zip(cands, scores, strict=True)]
        out.sort(key=lambda ev: -ev.score)
        return out

    def signals(self, question: str, passages: list[Passage], query: str = "") -> tuple[list, np.ndarray]:
        """The candidate sentences of `passages` and, per candidate, the SIGNALS row that
        scores it: cosines (alone, in context, against the conversation), the idf-weighted
        share of the question's content words, a match of the answer type, the passage rank."""
        seen, cands = set(), []
        for rank, p in enumerate(passages):
            doc = self.index.docs[p.chunk.doc_id].doc
            prev_text = p.chunk.heading
            for s, e in p.chunk.sentences:
                text = doc.text[s:e]
                if (doc.doc_id, s) not in seen and not _asks_or_instructs(text):
                    seen.add((doc.doc_id, s))
                    cands.append((rank, doc, s, e, text, f"{prev_text} {text}".strip()))
                prev_text = text
        if not cands:
            return [], np.zeros((0, len(SIGNALS)))
        vecs = self.embedder.embed([question, query or question])
        svecs, cvecs = self._sentence_vectors(cands)
        cos = svecs @ vecs[0]
        cos_ctx = cvecs @ vecs[0]
        cos_query = np.maximum(svecs @ vecs[1], cvecs @ vecs[1])
        q_stems = content_stems(question)
        wanted = want(question)
        strength = 1.0 if wanted.checkable else 0.5
        head = stem(wanted.head) if wanted.head else ""
        weights = {st: self.idf.get(st, 1.0) for st in q_stems}
        total = sum(weights.values()) or 1.0
        rows = []
        for i, (rank, _doc, _s, _e, text, _) in enumerate(cands):
            have = text_stems(text)
            lex = sum(w for st, w in weights.items() if st in have) / total
            fits = wanted.kind != "any" and wanted.satisfied_by(text) and (not head or head in have)
            rows.append((cos[i], cos_ctx[i], cos_query[i], lex, strength * fits, 1 / (1 + rank)))
        return cands, np.array(rows, dtype=np.float64)

    def _sentence_vectors(self, cands: list) -> tuple[np.ndarray, np.ndarray]:
        """Each candidate's vector alone and read in context. The index stores every
        sentence's vector, so nothing is embedded here; "in context" is the normalized sum of
        the sentence's vector and the one before it in its document (so "he said" keeps its
        speaker). An index built in memory without sentence vectors embeds them instead."""
        stored = [self.index.sentence_vector(c[1].doc_id, c[2]) for c in cands]
        if any(v is None for v in stored):
            return (self.embedder.embed([c[4] for c in cands]),
                    self.embedder.embed([c[5] for c in cands]))
        alone = np.stack(stored)
        before = []
        for c, v in zip(cands, alone, strict=True):
            prev = self._previous(c[1].doc_id, c[2])
            pv = self.index.sentence_vector(c[1].doc_id, prev) if prev is not None else None
            before.append(v if pv is None else v + pv)
        ctx = np.stack(before)
        ctx /= np.maximum(np.linalg.norm(ctx, axis=1, keepdims=True), 1e-12)
        return alone, ctx

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
        s, e = spans[i]
        doc = self.index.docs[ev.doc_id].doc
        if "\n" in doc.text[ev.end : s]:
            return None
        return Evidence(ev.doc_id, ev.title, ev.source, s, e, doc.text[s:e], 0.0)
