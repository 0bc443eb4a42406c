"""Turn evidence into answer text with `[n]` markers: quoted (extractive) or a checked draft.

    >>> split_parts("Where did they meet, and what did they clash over?")
    ['Where did they meet', 'what did they clash over?']
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Sequence

from .chunking import split_sentences
from .terms import content_stems, text_stems
from .types import Citation, Evidence
from .verify import Checker, split_markers

_PARTS = re.compile(r",?\s+and\s+(?=(?:what|where|when|who|whom|why|how|which)\b)", re.I)
_ELABORATES = re.compile(r"(he|she|they|it|this|these|that|those|such|his|her|their)\b", re.I)
# phrases small models put before an answer ("Sure! Based on the sources, ..."); they claim
# nothing, so they are dropped, as many as open the sentence
_PREAMBLE = re.compile(
    r"^((sure|certainly|of course|okay)\b[,.!]?\s*|"
    r"based on (the )?(provided |given )?(sources?|articles?|documents?|text)( provided| given)?,?\s*|"
    r"according to (the )?(sources?|articles?|documents?|text)( \[\d+\])?,?\s*|"
    r"(the )?(sources?|articles?|documents?|text)( cited| used| given)?( in the question)?"
    r" (says?|suggests?|states?|shows?|mentions?|notes?|reports?|are|is)\b( that)?:?\s*|"
    r"(the )?answer( to the question)? is\b:?\s*|answer:\s*|"
    r"it (only )?(says?|mentions?|states?|notes?)\b( that)?:?\s*)+",
    re.I,
)

Rendered = tuple[str, list[Citation]]


def split_parts(question: str) -> list[str]:
    """A compound question ("where ..., and what ...?") as its parts; else [question]."""
    parts = [p.strip() for p in _PARTS.split(question) if p.strip()]
    return parts if len(parts) > 1 else [question]


def render(kept: Sequence[tuple[str, Sequence[Evidence]]]) -> Rendered:
    """Sentences with their evidence -> text with markers numbered by first appearance."""
    numbers: dict[tuple[str, int], int] = {}
    cited: list[Citation] = []
    parts = []
    for text, evs in kept:
        marks = []
        for ev in evs:
            key = (ev.doc_id, ev.start)
            if key not in numbers:
                numbers[key] = len(numbers) + 1
                cited.append(Citation.from_evidence(numbers[key], ev))
            marks.append(f"[{numbers[key]}]")
        parts.append(f"{text.rstrip()} {''.join(dict.fromkeys(marks))}")
    return " ".join(parts), cited


def extractive(
    leads: Sequence[Evidence],
    ranked: Sequence[Evidence],
    next_sentence: Callable[[Evidence], Evidence | None],
) -> Rendered:
    """Quote the best sentence for each part of the question. When the sentence after a lead
    elaborates it ("He believes ...") and ranks close to it, quote that too: together they
    carry the thought."""
    scores = {(e.doc_id, e.start): e.score for e in ranked}
    chosen: list[Evidence] = []
    for lead in leads:
        if any((c.doc_id, c.start) == (lead.doc_id, lead.start) for c in chosen):
            continue
        chosen.append(lead)
        nxt = next_sentence(lead)
        if nxt is not None and _ELABORATES.match(nxt.text):
            score = scores.get((nxt.doc_id, nxt.start), 0.0)
            if score >= FOLLOW_ON * lead.score and len(leads) == 1:
                chosen.append(dataclasses.replace(nxt, score=score))
    if len(leads) == 1:  # another document's best sentence, if it answers nearly as well
        other = next((e for e in ranked if e.doc_id != leads[0].doc_id), None)
        if other is not None and other.score >= OTHER_DOC * leads[0].score:
            chosen.append(other)
    # a hard-wrapped quote reads as one line; its citation keeps the exact text
    return render([(" ".join(ev.text.split()), [ev]) for ev in chosen])


FOLLOW_ON = 0.6  # a following sentence joins its lead when it scores this share of the lead
RELEVANT = 0.8  # a generated sentence must cite a source scoring this share of the best one
OTHER_DOC = 0.85  # another document's best sentence joins when it scores this share of the lead


def checked(
    question: str, draft: str, evidence: Sequence[Evidence], checker: Checker
) -> tuple[Rendered | None, str]:
    """Keep the draft's sentences that the cited evidence supports; (None, why) if none.

    The draft must also answer with the best evidence: a true sentence from a weaker source
    is not the answer the quote would have given.
    """
    kept: list[tuple[str, list[Evidence]]] = []
    reasons = []
    spans = split_sentences(draft)
    if spans and not re.search(r"[.!?\]”\"’)]$", draft[spans[-1].start : spans[-1].end]):
        # cut off by the token limit: an unfinished sentence claims nothing. Closed with a full
        # stop, the last span splits into the sentences it holds (left open, a short draft reads
        # as a title: one span), and only the unfinished one is dropped
        last = spans.pop()
        spans += [sp for sp in split_sentences(draft[: last.end] + ".")[:-1] if sp.start >= last.start]
    floor = RELEVANT * evidence[0].score if evidence else 0.0
    pieces = [p for sp in spans for p in re.split(r";\s+", draft[sp.start : sp.end])]
    for piece in pieces:
        plain, ns = split_markers(piece)
        plain = _PREAMBLE.sub("", plain).strip()
        if plain[:1].islower():
            plain = plain[0].upper() + plain[1:]
        low = plain.lower()
        if "don't say" in low or "do not say" in low:
            reasons.append("the model said the sources do not answer it")
            continue
        if not plain:
            continue
        sup = checker.support(plain, list(evidence), ns)
        if not sup.ok:
            reasons.append(sup.reason)
            continue
        cited = [evidence[n - 1] for n in sup.cited]
        if max(e.score for e in cited) < floor:
            reasons.append("it cites a source that matches the question less well than the best one")
            continue
        if plain not in [k[0] for k in kept]:
            kept.append((plain, cited))
    if not kept:
        return None, "; ".join(dict.fromkeys(reasons)) or "it has no complete sentence to check"
    if not any(evidence[0] in evs for _, evs in kept):
        return None, "it does not cite the best-matching source"
    answer_stems = set().union(*(text_stems(k[0]) for k in kept))
    if not content_stems(question) & answer_stems:
        return None, "it shares no word with the question"
    return render(kept), ""
