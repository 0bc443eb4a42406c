"""The small vocabulary every part of the engine speaks.

A `Document` is a file's text; a `Chunk` is a span of it with exact character offsets; a
`Passage` is a retrieved chunk with its score; `Evidence` is one sentence inside a passage that
an answer may cite (a `Lead` is the best one for a part of the question); an `Answer` is
checked text whose `[n]` markers point at `Citation`s.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Literal, NamedTuple

# How an answer was made, in Settings.mode's words: "generate" (the model wrote it, and it
# passed the check), "extractive" (quoted from the sources), or "abstained".
Mode = Literal["generate", "extractive", "abstained"]
# What the engine concludes, from its fitted probabilities (rag.answering.confidence): an answer; not
# sure (the best passage found is shown, marked as possibly not the answer); or the documents
# don't say (only when it is confident the answer is not there).
Outcome = Literal["answer", "not_sure", "not_in_documents"]


@dataclass(frozen=True)
class Document:
    doc_id: str
    title: str
    source: str  # path of the file, as given to the indexer
    text: str  # the file's text; every offset in the engine points into it
    sha256: str  # hash of the text, used to skip unchanged documents


@dataclass(frozen=True)
class Chunk:
    doc_id: str
    text: str  # == document.text[start:end]
    start: int
    end: int
    heading: str = ""  # section heading the chunk sits under, "" before any heading
    sentences: tuple[tuple[int, int], ...] = ()  # absolute (start, end) of each sentence


@dataclass(frozen=True)
class Passage:
    chunk: Chunk
    score: float  # fused retrieval score, higher is better


@dataclass(frozen=True)
class Evidence:
    """One sentence that an answer may cite, with exact offsets into its document."""

    doc_id: str
    title: str
    source: str
    start: int
    end: int
    text: str
    score: float


class Lead(NamedTuple):
    """The best sentence for one part of a question, and the sentence after it."""

    sentence: Evidence
    after: Evidence | None  # the next sentence in its paragraph (score 0: it was not ranked)


@dataclass(frozen=True)
class Citation:
    n: int
    doc_id: str
    title: str
    source: str
    start: int
    end: int
    quote: str  # == the document's text[start:end]
    score: float = 0.0

    @classmethod
    def from_evidence(cls, n: int, ev: Evidence) -> Citation:
        return cls(n, ev.doc_id, ev.title, ev.source, ev.start, ev.end, ev.text, round(ev.score, 4))


@dataclass(frozen=True)
class Answer:
    question: str
    text: str  # with [n] markers
    mode: Mode
    citations: tuple[Citation, ...] = ()
    retrieval_query: str = ""  # what retrieval actually used (differs for follow-ups)
    timings: dict[str, float] = field(default_factory=dict)
    note: str = ""  # why the engine took this path, for people checking it
    final: bool = True  # False: shown while the reader checks it or a rewrite is written
    # how sure the engine is of what it says, 0-1: of the answer, or that the documents
    # don't say (rag.answering.confidence); None when no confidence was computed
    confidence: float | None = None
    pending: str = ""  # for an answer that is not final: "reader" or "rewrite" comes next
    outcome: Outcome = "answer"  # "not_in_documents" exactly when mode is "abstained"
    why: str = ""  # the reason in plain words, for the person asking; `note` has the figures
    # the passages the reader judged, as quoting each would show them (for `rag eval`)
    judged: tuple[str, ...] = field(default=(), repr=False)

    @property
    def abstained(self) -> bool:
        return self.mode == "abstained"

    def to_json(self) -> dict:
        """The `rag ask --json` contract; other tools rely on these names."""
        return {
            "question": self.question,
            "answer": self.text,
            "abstained": self.abstained,
            "mode": self.mode,
            "citations": [
                {k: v for k, v in asdict(c).items() if k != "score"} for c in self.citations
            ],
            "timings": {
                k: round(self.timings.get(k, 0.0), 1)
                for k in ("retrieve_ms", "first_answer_ms", "reader_ms", "generate_ms", "total_ms")
            },
            "retrieval_query": self.retrieval_query,
            # P(what the outcome says is true): the answer (or the passage shown) is right, or
            # for not_in_documents, the documents do not answer the question
            "confidence": None if self.confidence is None else round(self.confidence, 3),
            "outcome": self.outcome,  # answer | not_sure | not_in_documents
            "why": self.why,  # in plain words
            "note": self.note,  # how the engine decided, with its probabilities and thresholds
            "final": self.final,  # false only for an answer that a later one may replace
            "pending": self.pending,  # what comes next for an answer not final: reader, rewrite
        }
