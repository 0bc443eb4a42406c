"""Turn evidence into answer text with `[n]` markers: quoted (extractive) or a checked draft."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from typing import NamedTuple

from ..reading.chunking import split_sentences
from ..reading.form import form
from ..reading.terms import text_stems
from ..types import Citation, Evidence, Lead
from .query import Ask, Query
from .verify import Checker, split_markers

_ELABORATES = re.compile(r"(he|she|they|it|this|these|that|those|such|his|her|their)\b", re.I)
# phrases small models put before an answer ("Sure! Based on the sources, ..."); they claim
# nothing, so they are dropped, as many as open the sentence
_SOURCES = r"(sources?|articles?|documents?|texts?|passages?|context|information)"
_SAID = r"(provided|given|cited|above|numbered|quoted)"
_PREAMBLE = re.compile(
    r"^((sure|certainly|of course|okay)\b[,.!]?\s*|"
    rf"(based on|according to|from|in) (the )?({_SAID} )?{_SOURCES}( {_SAID})?( \[\d+\])?,?\s*|"
    rf"(as )?(stated|mentioned|noted|said|described) in (the )?({_SAID} )?{_SOURCES}"
    r"( \[\d+\])?,?\s*|"
    rf"(the )?({_SAID} )?{_SOURCES}( {_SAID}| used)?( in the (question|{_SOURCES}))?"
    r" (says?|suggests?|states?|shows?|mentions?|notes?|reports?|indicates?|are|is)\b"
    r"( that)?:?\s*|"
    r"(the )?answer( to the question)? is\b:?\s*|answer:\s*|"
    r"it (only )?(says?|mentions?|states?|notes?)\b( that)?:?\s*)+",
    re.I,
)
# talk about the sources left inside a sentence ("..., as the provided text says"): no source
# says it, so a sentence that holds it is refused unless its own source has those words
_META = re.compile(rf"\b(the|these|this|{_SAID}) {_SOURCES}\b", re.I)


class Rendered(NamedTuple):
    text: str  # with [n] markers
    citations: list[Citation]  # numbered by first appearance


class Claim(NamedTuple):
    """A sentence of an answer and the evidence it stands on."""

    text: str
    evidence: Sequence[Evidence]


def render(claims: Sequence[Claim]) -> Rendered:
    """Sentences with their evidence -> text with markers numbered by first appearance."""
    numbers: dict[tuple[str, int], int] = {}
    cited: list[Citation] = []
    parts = []
    for text, evs in claims:
        marks = []
        for ev in evs:
            key = (ev.doc_id, ev.start)
            if key not in numbers:
                numbers[key] = len(numbers) + 1
                cited.append(Citation.from_evidence(numbers[key], ev))
            marks.append(f"[{numbers[key]}]")
        parts.append(f"{text.rstrip()} {''.join(dict.fromkeys(marks))}")
    return Rendered(" ".join(parts), cited)


def quote(leads: Sequence[Lead], ranked: Sequence[Evidence], ask: Ask | None = None) -> Rendered:
    """Quote the best sentence for each part of the question (see `selection`)."""
    return quoted(selection(leads, ranked, ask))


def quoted(chosen: Sequence[Evidence]) -> Rendered:
    """Sentences quoted word for word, each citing itself."""
    # a hard-wrapped quote reads as one line; its citation keeps the exact text
    return render([Claim(" ".join(ev.text.split()), [ev]) for ev in chosen])


def selection(
    leads: Sequence[Lead],
    ranked: Sequence[Evidence],
    ask: Ask | None = None,
    other_doc: bool = True,
) -> list[Evidence]:
    """The sentences to quote: the best for each part of the question. The sentence after a
    lead, in the same paragraph, joins it when together they carry the thought: when it
    elaborates the lead ("He believes ...") and ranks close to it, or when it finishes the
    answer the lead begins (`completes`). With `other_doc`, another document's best sentence
    joins a single lead when it answers nearly as well."""
    scores = {(e.doc_id, e.start): e.score for e in ranked}
    chosen: list[Evidence] = []
    for lead, after in leads:
        if any((c.doc_id, c.start) == (lead.doc_id, lead.start) for c in chosen):
            continue
        chosen.append(lead)
        if after is not None and len(leads) == 1:
            score = scores.get((after.doc_id, after.start), 0.0)
            if (_ELABORATES.match(after.text) and score >= FOLLOW_ON * lead.score) or (
                ask is not None and completes(ask, lead.text, after.text)
            ):
                chosen.append(dataclasses.replace(after, score=score))
    if len(leads) == 1 and other_doc:  # another document's best sentence, nearly as good
        best = leads[0].sentence
        other = next((e for e in ranked if e.doc_id != best.doc_id), None)
        if other is not None and other.score >= OTHER_DOC * best.score:
            chosen.append(other)
    return chosen


def completes(ask: Ask, lead: str, after: str) -> bool:
    """Does `after`, the next sentence of the lead's paragraph, finish the answer the lead
    begins? The lead names the thing asked about and `after` gives what was asked of it: the
    kind of answer the question wants, which the lead lacks ("DSHELL The login shell ..." then
    "Defaults to /bin/bash."), or words of the question the lead lacks ("default"). Only a
    short sentence that states something joins."""
    if len(" ".join(after.split())) > COMPLETES_CHARS or form(after) != "prose":
        return False
    wanted = ask.answer_type
    if wanted.kind != "any" and wanted.satisfied_by(after) and not wanted.satisfied_by(lead):
        return True
    asked = ask.terms.stems
    lead_has, after_has = text_stems(lead) & asked, text_stems(after) & asked
    return bool(lead_has) and bool(after_has - lead_has)


COMPLETES_CHARS = 240  # a following sentence this long or longer is a thought of its own
FOLLOW_ON = 0.6  # a following sentence joins its lead when it scores this share of the lead
RELEVANT = 0.8  # a generated sentence must cite a source scoring this share of the best one
OTHER_DOC = 0.85  # another document's best sentence joins when it scores this share of the lead


def checked(
    query: Query, draft: str, evidence: Sequence[Evidence], checker: Checker
) -> tuple[Rendered | None, str]:
    """Keep the draft's sentences that the cited evidence supports; (None, why) if none.

    The draft must also answer with the best evidence: a true sentence from a weaker source
    is not the answer the quote would have given.
    """
    kept: list[Claim] = []
    reasons = []
    spans = split_sentences(draft)
    if spans and not re.search(r"[.!?\]”\"’)]$", draft[spans[-1].start : spans[-1].end]):
        # cut off by the token limit: an unfinished sentence claims nothing. Closed with a full
        # stop, the last span splits into the sentences it holds (left open, a short draft reads
        # as a title: one span), and only the unfinished one is dropped
        last = spans.pop()
        spans += [
            sp for sp in split_sentences(draft[: last.end] + ".")[:-1] if sp.start >= last.start
        ]
    floor = RELEVANT * evidence[0].score if evidence else 0.0
    pieces = [p for sp in spans for p in re.split(r";\s+", draft[sp.start : sp.end])]
    for piece in pieces:
        plain, numbers = split_markers(piece)
        plain = _PREAMBLE.sub("", plain).strip()
        if plain[:1].islower():
            plain = plain[0].upper() + plain[1:]
        low = plain.lower()
        if "don't say" in low or "do not say" in low:
            reasons.append("the model said the sources do not answer it")
            continue
        if not plain:
            continue
        support = checker.support(plain, list(evidence), numbers)
        if not support.ok:
            reasons.append(support.reason)
            continue
        cited = [evidence[n - 1] for n in support.cited]
        meta = _META.search(plain)
        if meta and meta.group(0).lower() not in " ".join(e.text for e in cited).lower():
            reasons.append(f"it talks about the sources (“{meta.group(0)}”) instead of answering")
            continue
        if max(e.score for e in cited) < floor:
            reasons.append(
                "it cites a source that matches the question less well than the best one"
            )
            continue
        if plain not in [claim.text for claim in kept]:
            kept.append(Claim(plain, cited))
    if not kept:  # the first sentence's reason; a list of every sentence's reads as noise
        if not reasons:
            return None, "it has no complete sentence to check"
        more = len(reasons) - 1  # counted in claims: a sentence may hold several, split at ";"
        tail = {0: "", 1: "; one more of its claims failed too"}.get(
            more, f"; {more} more of its claims failed too"
        )
        return None, reasons[0] + tail
    if not any(evidence[0] in claim.evidence for claim in kept):
        return None, "it does not cite the best-matching source"
    answer_stems = set().union(*(text_stems(claim.text) for claim in kept))
    if not query.terms.stems & answer_stems:
        return None, "it shares no word with the question"
    return render(kept), ""
