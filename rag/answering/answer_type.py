"""What kind of answer a question wants, and whether a sentence could be one.

"How many soldiers died?" wants a number next to "soldiers"; "On what date...?" wants a date.
Evidence without such an answer cannot answer the question, however similar it looks: this is
the signal that a cosine threshold lacks.

    >>> wanted = answer_type("How many soldiers have died?")
    >>> wanted.kind, wanted.counted
    ('count', 'soldiers')
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

from ..reading.terms import QUESTION_WORDS, STOPWORDS

NUMBER = re.compile(
    r"\d|\b(one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|twenty|thirty|"
    r"forty|fifty|hundred|hundreds|thousand|thousands|million|millions|billion|billions|"
    r"dozen|dozens|half|double|twice|percent)\b",
    re.IGNORECASE,
)
# case-sensitive only where it must be: "may" and "march" are everyday words ("unity may fray",
# "children under 12 may enter", "they march on"), so those two months count capitalised and
# next to a day, a year or a preposition of time
_DATE_WORDS = (
    r"(?i:\b(january|february|april|june|july|august|september|october|november|"
    r"december|monday|tuesday|wednesday|thursday|friday|saturday|sunday|today|tomorrow|"
    r"yesterday|tonight|(19|20)\d\d|\d{1,2}(st|nd|rd|th)|next (week|month|year)|"
    r"last (week|month|year)|this (week|month|year)|ago)\b)|"
    r"\b(May|March)\s+(\d{1,2}(st|nd|rd|th)?|(19|20)\d\d)\b|"
    r"\b\d{1,2}(st|nd|rd|th)?\s+(of\s+)?(May|March)\b|"
    r"(?i:\b(in|since|until|till|by|from|early|late|mid|mid-|last|next|this|of|during|before|"
    r"after))\s+(May|March)\b"
)
DATE = re.compile(_DATE_WORDS)
WHEN = re.compile(
    rf"{_DATE_WORDS}|(?i:\b(soon|once|after|before|until|later|earlier|recently|day one|"
    r"year|years|month|months|week|weeks)\b)"
)
_NUM = r"(\d[\d,.]*|one|two|three|four|five|six|seven|eight|nine|ten|twelve|twenty|thirty|several|many|few)"
_ORD = r"(first|second|third|fourth|fifth|sixth|seventh|eighth|ninth|tenth|\d+(st|nd|rd|th))"
DURATION = re.compile(
    rf"\b{_NUM}[- ](\w+[- ])?(seconds?|minutes?|hours?|days?|weeks?|months?|years?|decades?)\b|"
    rf"\b{_ORD} (second|minute|hour|day|week|month|year|decade)\b|\bsince (19|20)\d\d\b|"
    r"\ban hour\b",  # the one unit that takes "an" ("a day" is as often a rate as a length)
    re.IGNORECASE,
)

PLACE = re.compile(r"\b(?:in|at|to|from|near|inside|outside)\s+(?:the\s+)?([A-Z][\w’'.-]+)")
NAME = re.compile(r"(?<=\w[\s,])[A-Z][\w’'.-]+")

QUOTE = re.compile(r"[“”\"]")
CONDITION = re.compile(r"\b(if|unless|provided|as long as|only when|on condition|must|until)\b")

# nouns that name no particular thing: "how many people", "how many times"
GENERIC_NOUNS = frozenset("people persons ones times things kinds".split())
_AUX = frozenset(
    "have has had were was are is be been will would could should did do does can may might "
    "must shall".split()
)


@dataclass(frozen=True)
class AnswerType:
    kind: str  # count | amount | date | when | duration | quote | condition | where | who | any
    counted: str = ""  # the noun counted, for count questions ("soldiers")
    given: frozenset[str] = frozenset()  # the question's own words: a name in them is no answer

    def satisfied_by(self, sentence: str) -> bool:
        low = sentence.lower()
        if self.kind in ("count", "amount"):
            return bool(NUMBER.search(sentence))
        if self.kind == "date":
            return bool(DATE.search(sentence))
        if self.kind == "when":
            return bool(WHEN.search(sentence))
        if self.kind == "duration":
            return bool(DURATION.search(low))
        if self.kind == "quote":
            return bool(QUOTE.search(sentence))
        if self.kind == "condition":
            return bool(CONDITION.search(low))
        if self.kind == "where":
            return any(_new_name(m.group(1), self.given) for m in PLACE.finditer(sentence))
        if self.kind == "who":
            return any(_new_name(m.group(0), self.given) for m in NAME.finditer(sentence))
        return True

    @property
    def required(self) -> bool:
        """Whether evidence lacking this kind of answer means the documents don't say.
        Places and people are only a ranking hint: too many words look like names."""
        return self.kind in ("count", "amount", "date", "when", "duration")


def answer_type(question: str) -> AnswerType:
    q = question.strip().lower()
    if re.search(r"\b(what|which) (date|day|year|month|time)\b|\bwhat time\b", q):
        return AnswerType("date")
    m = re.search(r"\bhow many\b(.*)", q)
    if m:
        return AnswerType("count", _counted_noun(m.group(1)))
    if re.search(r"\bhow much\b|\bwhat (percentage|percent|share|amount|number)\b", q):
        return AnswerType("amount")
    if re.search(r"\bhow long\b|\bfor how long\b", q):
        return AnswerType("duration")
    if re.match(r"(and |so |but )?when (did|was|were)\b", q):
        return AnswerType(
            "date"
        )  # "When did the war start?" wants a date, not "once a deal is made"
    if re.match(r"(and |so |but )?when\b", q):
        return AnswerType("when")
    if re.search(r"\bhow old\b", q):
        return AnswerType("count")
    if re.search(
        r"\b(own|exact|actual) words\b|\bquote|\bverbatim\b|\bin (his|her|their) words\b", q
    ):
        return AnswerType("quote")
    if re.search(r"\b(under what|on what|what) conditions?\b|\bin what case\b", q):
        return AnswerType("condition")
    given = frozenset(w.lower() for w in re.findall(r"[\w’'.-]+", question))
    if re.match(r"(and |so |but )?where\b", q):
        return AnswerType("where", given=given)
    if re.match(
        r"(and |so |but )?(who|whom)\b|.*\b(which|what) (country|countries|leader|leaders|person|people|nations?)\b",
        q,
    ):
        return AnswerType("who", given=given)
    return AnswerType("any")


_HOW_TO = re.compile(  # "how do I reset …", "how can you tell …", "how to install …"
    r"\s*(?:and |so |but )?how (?:(?:do|can|could|should|would|will|must) (?:i|you|we|one) |to )"
    r"([a-z][a-z-]+)(?: ([a-z]+))?",
    re.IGNORECASE,
)
# words after the verb that make it another verb ("set up", "log in"): not checked alone
_PARTICLES = frozenset("up in out off on down back over away about through".split())


def asks_how_to(question: str) -> bool:
    """Does the question ask how to do something ("How do I reset …", "How to install …")?"""
    return bool(_HOW_TO.match(question))


def asked_for(question: str) -> str:
    """The thing a "what is the X of Y" / "what is Y's X" question asks for ("capital" in
    "What is the capital of France?"), or the action a "how do I VERB" question asks how to do
    ("reset" in "How do I reset a password?"); "" when the question has neither."""
    how = _HOW_TO.match(question)
    if how:
        verb, after = how.group(1).lower(), (how.group(2) or "").lower()
        if (
            verb in STOPWORDS
            or verb in _AUX
            or verb in _VAGUE_VERBS
            or after in _PARTICLES
            or verb.endswith("ly")
        ):  # an adverb first ("how do I quickly …"): unread
            return ""
        return verb
    m = re.match(
        r"\s*(?:and |so |but )?(?:what|which)(?:'s|’s| is| are| was| were) "
        r"(?:(?:the|a|an) |[\w.-]+(?:'s|’s|s') )([\w\s-]+)",
        question,
        re.IGNORECASE,
    )
    if not m:
        return ""
    phrase = []
    for w in m.group(1).lower().split()[:4]:
        if w in STOPWORDS or w in QUESTION_WORDS:
            break
        phrase.append(w)
    head = phrase[-1] if phrase else ""
    return "" if frames(head) else head


def frames(word: str) -> bool:
    """Does `word` only frame a question ("the *state* of …", "what *kind* of …") rather than
    name what it asks about? Decided by how common the word is in English (wordfreq's Zipf
    scale), cut where, on the fitting corpora's questions, a word that common is more often
    missing from the passage that answers than in it (`python -m bench.fit_confidence frames`
    fits the cut into rag/answering/confidence.json). Such a word's absence is no reason to refuse.

        >>> frames("state"), frames("password")
        (True, False)
    """
    from wordfreq import zipf_frequency

    return bool(word) and zipf_frequency(word, "en") >= _frame_cut()


@functools.lru_cache(maxsize=1)
def _frame_cut() -> float:
    from .confidence import frame_cut

    return frame_cut()


# verbs that name no particular action: "how do I get …", "how can I make …"
_VAGUE_VERBS = frozenset(
    """get make do go use find know see tell say keep let put take give describe explain
    compare define summarize summarise interpret understand think feel call pronounce""".split()
)


def _new_name(word: str, given: frozenset[str]) -> bool:
    """A proper name the question did not already use (possessives are not places)."""
    if re.search(r"[’']s$", word):
        return False
    return word.lower().rstrip(".") not in given


def _counted_noun(rest: str) -> str:
    """The counted noun: the last word before the verb in "how many [adj] NOUN VERB..."."""
    words = re.findall(r"[a-z][a-z'’-]*", rest)
    phrase = []
    for w in words:
        if w in _AUX or (w in STOPWORDS and phrase):
            break
        if w in STOPWORDS:
            continue
        phrase.append(w)
    return phrase[-1] if phrase else ""
