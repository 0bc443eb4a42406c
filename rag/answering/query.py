"""The question, read once: what it searches for, its parts, what it asks, the answer it wants.

Every stage after this one takes the `Query` and reads no question text again.

    >>> q = read("Where did they meet, and what did they clash over?")
    >>> [part.text for part in q.parts]
    ['Where did they meet', 'what did they clash over?']
    >>> read("How many soldiers have died?").asking.answer_type.counted
    'soldiers'
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from ..errors import InputError
from ..reading.chunking import split_sentences
from ..reading.terms import KeyTerms, key_terms, stem, tokens
from ..settings import Settings
from .answer_type import AnswerType, answer_type, asked_for, asks_how_to
from .language import foreign_language

_FOLLOW_UP = re.compile(
    r"\b(he|she|him|his|her|they|them|their|it|its|this|that|these|those|there|then|"
    r"the same|also|too|instead|else|other)\b|^(and|but|so|what about|how about)\b",
    re.IGNORECASE,
)
_PARTS = re.compile(r",?\s+and\s+(?=(?:what|where|when|who|whom|why|how|which)\b)", re.I)


@dataclass(frozen=True)
class Ask:
    """A stretch of the question that asks something (a part of a compound question, or the
    sentences that ask), read once."""

    text: str
    search: str  # what retrieval searches for: with the question before it, for a follow-up
    answer_type: AnswerType  # "How many soldiers ...?" wants a count of soldiers
    terms: KeyTerms  # its content stems, names and numbers
    asked_for: str  # the thing asked for: "capital" in "What is the capital of France?"
    spelling: tuple[tuple[str, str], ...]  # (stem, the word as written), in the text's order
    how_to: bool = False  # asks how to do something: asked_for is then the action ("reset")


@dataclass(frozen=True)
class Query:
    """A checked question with its conversation, read once."""

    text: str
    history: tuple[str, ...]  # earlier questions, oldest first
    search: str  # what retrieval searches for (the question with its context, for follow-ups)
    terms: KeyTerms  # of the whole question
    parts: tuple[Ask, ...]  # each part of a compound question; one part when it asks one thing
    asking: Ask  # the sentences that ask, asides left out: what the evidence must cover

    @property
    def answer_type(self) -> AnswerType:
        """The kind of answer wanted, as the asking sentences say."""
        return self.asking.answer_type


def read(question: str, history: Sequence[str] = ()) -> Query:
    """Read a question (already checked by `check_question`) and the ones asked before it."""
    history = tuple(history)
    search = retrieval_query(question, history)
    parts = split_parts(question)
    if len(parts) == 1:
        asks = (read_ask(question, search),)
    else:
        asks = tuple(read_ask(part, retrieval_query(part, history)) for part in parts)
    return Query(
        question,
        history,
        search,
        key_terms(question),
        asks,
        read_ask(asking_part(question), search),
    )


def read_ask(text: str, search: str) -> Ask:
    """One stretch of a question, read; `search` is what retrieval searches for with it."""
    spelling: dict[str, str] = {}
    for t in tokens(text):
        spelling.setdefault(stem(t), t)
    return Ask(
        text,
        search,
        answer_type(text),
        key_terms(text),
        asked_for(text),
        tuple(spelling.items()),
        asks_how_to(text),
    )


def check_question(question: str, settings: Settings) -> str:
    """The question, stripped; an InputError naming the fix when the engine cannot take it."""
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
        written = (
            f"is written in {language}"
            if language.endswith("script")
            else ("is not" if language == "another language" else f"reads as {language}")
        )
        raise InputError(
            f"ask in English: the embedding model and the answer checks read "
            f"English only, and this question {written}"
        )
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
    if _FOLLOW_UP.search(question) or len(key_terms(question).stems) <= 1:
        return f"{previous} {question}"
    return question


def split_parts(question: str) -> list[str]:
    """A compound question ("where ..., and what ...?") as its parts; else [question]."""
    parts = [p.strip() for p in _PARTS.split(question) if p.strip()]
    return parts if len(parts) > 1 else [question]
