"""The engine does not trust the model. This module decides whether the evidence covers a
question at all, and holds every generated sentence to the evidence it cites.

Coverage: the names and numbers a question asks about must appear in the retrieved text, and
the kind of answer it wants (a number, a date) must be in the evidence; a cosine threshold
alone cannot tell an off-topic question from a hard one. Support: a sentence's names and
numbers must appear in the sources it cites, nearly all its content words must, and its
embedding must be close to theirs.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass

import numpy as np

from ..indexing.embed import Embedder
from ..reading.terms import (
    QUESTION_WORDS,
    STOPWORDS,
    initialisms,
    key_terms,
    stem,
    text_stems,
    tokens,
)
from ..types import Evidence
from .answer_type import GENERIC_NOUNS
from .query import Ask

MARKER = re.compile(r"\s*\[(\d+)\]")

MIN_EVIDENCE_COSINE = 0.25  # below this the best sentence is unrelated to the question
MIN_SYNONYM_COSINE = 0.6  # a word this close to a retrieved word counts as present
MIN_SUPPORT_WORDS = 0.9  # share of a generated sentence's content words found in its sources
MIN_SUPPORT_COSINE = 0.7


@dataclass(frozen=True)
class Coverage:
    covered: bool
    missing: tuple[str, ...]  # what the question asks about that no document has, as written
    reason: str
    # why not: "unrelated" (no sentence is close), "absent" (a word asked about is missing),
    # "answer" (no answer of the wanted kind), "nothing" (the question names nothing)
    kind: str = ""
    elsewhere: tuple[str, ...] = ()  # asked about, missing from the passages found, not from all


def plain_reason(c: Coverage) -> str:
    """Why the rules doubt that the documents answer, as a person would say it ("" when they
    do not doubt it)."""
    if c.covered:
        return ""
    if c.kind == "unrelated":
        return "Nothing in the documents comes close to this question."
    if c.kind == "nothing":
        return "The question names nothing to look up."
    if c.kind == "absent":
        said = []
        if c.missing:
            said.append(f"No document mentions {_listed(c.missing)}.")
        if c.elsewhere:
            said.append(
                f"The passages closest to the question do not mention {_listed(c.elsewhere)}."
            )
        return " ".join(said)
    return c.reason[:1].upper() + c.reason[1:] + "." if c.reason else ""


def _listed(words: Sequence[str]) -> str:
    quoted = [f"“{w}”" for w in words[:3]]
    return quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " or " + quoted[-1]


def fuzzy_in(term: str, have: Collection[str]) -> bool:
    """A stem, or a close form of it ("hungarian" ~ "hungari", "west" ~ "western")."""
    if term in have:
        return True
    if len(term) < 4 or any(ch.isdigit() for ch in term):
        return False
    for h in have:
        short, long_ = (term, h) if len(term) <= len(h) else (h, term)
        if (
            len(short) >= 4
            and long_.startswith(short[: max(4, len(short) - 1)])
            and (len(long_) - len(short) <= 3)
        ):
            return True
    return False


def coverage(
    ask: Ask,
    evidence: Sequence[Evidence],
    retrieved_text: str,
    best_cosine: float,
    vocabulary: Collection[str],
    embedder: Embedder | None = None,
) -> Coverage:
    """Can the evidence answer what `ask` asks? Four signals, any of which says no:
    the best sentence is unrelated; a name or number asked about is absent; the thing asked
    for ("the capital of France") is absent, as a word or a near synonym (by `embedder`; none
    given, only the word counts); the answer the question wants (a count of soldiers, a date)
    is nowhere in the evidence.

    `vocabulary` holds every stem of the collection, so that a reason claims "not in the
    documents" only when that is so; a term found elsewhere is reported as missing from the
    passages found, not from the documents."""
    terms = ask.terms
    if not terms.stems:
        return Coverage(False, (), "the question names nothing to look for", "nothing")
    if best_cosine < MIN_EVIDENCE_COSINE:
        return Coverage(
            False,
            (),
            f"no sentence found is close to this question (best match: cosine {best_cosine:.2f})",
            "unrelated",
        )
    have = text_stems(retrieved_text) | initialisms(retrieved_text)  # "GFDL" as its words too
    written = dict(ask.spelling)
    order = {s: i for i, s in enumerate(written)}
    asked = sorted(terms.names | terms.numbers, key=lambda s: order.get(s, len(order)))
    missing = [s for s in asked if not fuzzy_in(s, have)]
    if missing:
        return _absent([written.get(s, s) for s in missing], missing, vocabulary)
    thing = ask.asked_for
    if (
        thing
        and not fuzzy_in(stem(thing), have)
        and (embedder is None or closest_word(embedder, thing, retrieved_text) < MIN_SYNONYM_COSINE)
    ):
        return _absent([thing], [stem(thing)], vocabulary)
    wanted = ask.answer_type
    if not wanted.required:
        return Coverage(True, (), "")
    for ev in evidence:
        if not wanted.satisfied_by(ev.text):
            continue
        ev_stems = text_stems(ev.text)
        if wanted.kind == "count" and wanted.counted and wanted.counted not in GENERIC_NOUNS:
            if fuzzy_in(stem(wanted.counted), ev_stems):
                return Coverage(True, (), "")
        elif wanted.kind in ("count", "amount"):
            rest = terms.stems - {stem(x) for x in GENERIC_NOUNS}
            if any(fuzzy_in(t, ev_stems) for t in rest):
                return Coverage(True, (), "")
        else:
            return Coverage(True, (), "")
    what = {
        "count": "number",
        "amount": "figure",
        "date": "date",
        "when": "time",
        "duration": "length of time",
    }[wanted.kind]
    of = f" of {wanted.counted}" if wanted.kind == "count" and wanted.counted else ""
    return Coverage(False, (), f"the best-matching sentences give no {what}{of} for this", "answer")


def closest_word(embedder: Embedder, word: str, text: str) -> float:
    """The highest cosine between `word` and any word of `text` (a synonym test)."""
    words = sorted({t.lower() for t in tokens(text) if t.lower() not in STOPWORDS})
    if not words:
        return 0.0
    vecs = embedder.embed([word.lower(), *words])
    return float(np.max(vecs[1:] @ vecs[0]))


def _absent(words: list[str], stems: list[str], vocabulary: Collection[str]) -> Coverage:
    """Abstain for terms missing from the passages found, saying truly where they are missing:
    from every document, or only from the passages found. Only the first kind is named in the
    answer ("The documents don't say anything about X")."""
    nowhere = [w for w, s in zip(words, stems, strict=True) if not fuzzy_in(s, vocabulary)]
    found = [w for w in words if w not in nowhere]
    reasons = []
    if nowhere:
        reasons.append(f"not in the documents: {', '.join(nowhere)}")
    if found:
        reasons.append(f"not in the passages found for this question: {', '.join(found)}")
    return Coverage(False, tuple(nowhere), "; ".join(reasons), "absent", tuple(found))


def split_markers(sentence: str) -> tuple[str, list[int]]:
    """("Macron met Trump [1][2].", ) -> ("Macron met Trump.", [1, 2])"""
    numbers = [int(n) for n in MARKER.findall(sentence)]
    return MARKER.sub("", sentence).strip(), numbers


@dataclass(frozen=True)
class Support:
    ok: bool
    cited: tuple[int, ...]  # 1-based evidence numbers the sentence is held to
    reason: str


_NEGATION = re.compile(r"\b(not|no|never|nothing|none|neither|nor|cannot)\b|n[’']t\b", re.I)
_REPORTING = (
    r"(said|says|say|believes?|believed|thinks?|thought|argues?|argued|claims?|claimed|"
    r"stressed|stresses|added|adds|warned|warns|cautioned|cautions|acknowledged|acknowledges|"
    r"praised|praises|called|calls|cited|cites|emphasized|emphasizes|suggested|suggests|"
    r"insisted|insists|told|tells|wants?|wanted|sees|saw|fears?|feared|hopes?|hoped|"
    r"plans?|planned|criticized|criticizes|noted|notes|reiterated|reiterates|offered|offers)"
)
_SPEAKER = re.compile(  # "Macron said", "Macron, speaking in Paris, said", "said Macron"
    rf"\b([A-Z][\w’'.-]+)(?:,[^,.;:!?]{{1,80}},)?"
    rf"(?:\s+(?:also|has|had|once|then|further|reportedly)){{0,2}}\s+{_REPORTING}\b"
    rf"|\b{_REPORTING},?\s+([A-Z][\w’'.-]+)"
)


def _name_sources(numbers: list[int]) -> str:
    """ "source [2]" or "sources [1][3]": a reason names the sources it was checked against."""
    marks = "".join(f"[{n}]" for n in numbers)
    return (
        f"source {marks}" if len(numbers) == 1 else f"sources {marks}" if numbers else "the sources"
    )


def _negated(text: str) -> bool:
    return bool(_NEGATION.search(text))


def _speakers(text: str) -> set[str]:
    """Names that say, believe or want something in `text` ("Macron said", "said Trump")."""
    out = set()
    for m in _SPEAKER.finditer(text):
        name = m.group(1) or m.group(3)
        if name and not _sentence_initial_common(name):
            out.add(stem(name))
    return out


# numbers written as words ("three million", "its fourth year") are numbers the source must have
_NUMBER_WORDS = frozenset(
    """zero two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen
    sixteen seventeen eighteen nineteen twenty thirty forty fifty sixty seventy eighty ninety
    hundred thousand million billion trillion dozen first second third fourth fifth sixth
    seventh eighth ninth tenth twice half""".split()
)


def _held_words(sentence: str) -> set[str]:
    """Stems the cited source must have beyond `key_terms`' names and numbers: every
    capitalised word, at the start of the sentence or after a quote too ("Macron’s rhetoric
    resonates ..." with Trump's name swapped out), and numbers written as words."""
    out = set()
    for tok in tokens(sentence):
        low = tok.lower()
        if tok[0].isupper() and low not in STOPWORDS and low not in QUESTION_WORDS:
            out.add(stem(tok))
        out |= {
            stem(p)
            for p in re.split(r"[-'’]", low)
            if p in _NUMBER_WORDS or p.endswith("s") and p[:-1] in _NUMBER_WORDS
        }
    return out


def _sentence_initial_common(word: str) -> bool:
    return word.lower() in {"he", "she", "they", "it", "this", "that", "the", "we", "i", "who"}


class Checker:
    def __init__(self, embedder: Embedder):
        self.embedder = embedder

    def support(self, sentence: str, evidence: list[Evidence], cited: list[int]) -> Support:
        """Is `sentence` supported by one piece of evidence: one it cites, or, if it cites
        none validly, any one (which it then cites)? One source, not a blend of several: a
        blend is how a small model puts one person's words in another's mouth."""
        valid = [n for n in dict.fromkeys(cited) if 1 <= n <= len(evidence)]
        first = None
        for n in valid or range(1, len(evidence) + 1):
            result = self.check(sentence, [evidence[n - 1]], [n])
            if result.ok:
                return result
            first = first or result
        return first or Support(False, (), "no evidence to check against")

    def check(self, sentence: str, cited: list[Evidence], numbers: list[int]) -> Support:
        """Is `sentence` supported by the `cited` sentences together (numbered `numbers`)?"""
        terms = key_terms(sentence)
        words = terms.stems
        src = _name_sources(numbers)
        if len(words) < 2:
            return Support(False, tuple(numbers), "a sentence of fewer than two content words")
        source = " ".join(e.text for e in cited)
        have = text_stems(source)
        written = {stem(t): t for t in tokens(sentence)}  # report words as written, not stems
        held = terms.numbers | _held_words(sentence)  # the names are among its capitalised words
        loose = sorted(written.get(s, s) for s in held - have)
        if loose:
            return Support(
                False, tuple(numbers), f"names or numbers not in {src}: {', '.join(loose)}"
            )
        share = len(words & have) / len(words)
        if share < MIN_SUPPORT_WORDS:
            return Support(False, tuple(numbers), f"only {share:.0%} of its words are in {src}")
        if _negated(sentence) != _negated(source):
            which = (
                f"it has a negation that {src} lacks"
                if _negated(sentence)
                else (f"{src} has a negation that it lacks")
            )
            return Support(False, tuple(numbers), which)
        speakers = _speakers(sentence) - _speakers(source)
        if speakers:
            who = ", ".join(sorted(written.get(s, s) for s in speakers))
            return Support(False, tuple(numbers), f"{src} does not say that {who} said it")
        vecs = self.embedder.embed([sentence, *[e.text for e in cited]])
        cos = float(np.max(vecs[1:] @ vecs[0]))
        if cos < MIN_SUPPORT_COSINE:
            return Support(
                False, tuple(numbers), f"its meaning is far from {src} (cosine {cos:.2f})"
            )
        return Support(True, tuple(numbers), "")
