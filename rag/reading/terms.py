"""Words that carry meaning: tokens, stems, names and numbers.

The answer checker and the abstention rule both ask "does the evidence contain this word?";
this module defines "word" for them, once.

    >>> sorted(key_terms("What did Macron say about China?").stems)
    ['china', 'macron']
"""

from __future__ import annotations

import functools
import re
import unicodedata
from dataclasses import dataclass

TOKEN_PATTERN = r"[^\W_]+(?:[-'’.,][^\W_]+)*"  # "U.N.", "10,000" and "U.S.-European" are one word
_TOKEN = re.compile(TOKEN_PATTERN, re.UNICODE)
# an identifier joined by underscores (ADD_EXTRA_GROUPS, max_line_length) is read as its words
# and also whole, so that asking about ADD_EXTRA_GROUPS prefers it to EXTRA_GROUPS
_IDENTIFIER = re.compile(r"[^\W_]+(?:_[^\W_]+)+", re.UNICODE)


def identifiers(text: str) -> set[str]:
    """Underscore-joined identifiers in `text`, lowercased, whole."""
    return {m.group(0).lower() for m in _IDENTIFIER.finditer(text)}


# NLTK's English list (bm25s ships it as STOPWORDS_EN_PLUS) less its contractions and their
# pieces ("don't", "don", "won", "ma"): a negation is content here, and "won" is a verb; plus
# words that name nothing ("also", "could", "many", "one", "per", "upon", ...).
STOPWORDS = frozenset(
    """a about above after again against all also am an and any are as at be because been before
    being below between both but by can could did do does doing down during each either else
    ever few for from further had has have having he her here hers herself him himself his how i
    if in into is it its itself just let me might more most must my myself neither no nor not now
    of off on once only or other ought our ours ourselves out over own per same shall she should
    so some such than that the their theirs them themselves then there these they this those
    through to too under until up upon us very was we were what when where which while who whom
    whose why will with would yet you your yours yourself yourselves one ones still much many
    s t d ll re ve m o y""".split()
)

# Words a question uses to ask, not to say what it is about.
QUESTION_WORDS = frozenset(
    """say says said tell tells told think thinks thought believe believes believed according
    article articles document documents text source sources mention mentions mentioned describe describes described
    explain explains happen happened happens kind sort way ways thing things really exactly
    give gives given know known want wants wanted like also anything something stance view views
    opinion position plan plans planned role main two both get got make made go going come
    long far often""".split()
)


@functools.lru_cache(maxsize=1)
def _stemmer():
    import snowballstemmer

    return snowballstemmer.stemmer("english")


@functools.lru_cache(maxsize=50_000)
def stem(word: str) -> str:
    """A word's English stem, accents folded ("Élysée" and "Elysee" alike), possessive dropped."""
    w = word.lower().replace("’", "'")
    folded = "".join(ch for ch in unicodedata.normalize("NFKD", w) if not unicodedata.combining(ch))
    if folded.isascii():  # only Latin letters are folded; other scripts keep their marks
        w = folded
    w = re.sub(r"'s$", "", w)
    if any(ch.isdigit() for ch in w):
        return w.replace(",", "")
    return _stemmer().stemWord(w)


def tokens(text: str) -> list[str]:
    return _TOKEN.findall(text)


def content_stems(text: str) -> set[str]:
    """Stems of the words that are neither stopwords nor question words."""
    out = set()
    for tok in tokens(text):
        low = tok.lower()
        if low in STOPWORDS or low in QUESTION_WORDS or len(low) < 2 and not _single_name(tok):
            continue
        out.add(stem(tok))
        for part in re.split(r"[-'’]", low):  # "U.S.-European" also covers "european"
            if part and part != low and part not in STOPWORDS and len(part) > 2:
                out.add(stem(part))
    return out | identifiers(text)


def _single_name(tok: str) -> bool:
    """A one-character word that names something: a digit, or a capital letter other than
    the pronoun and the article ("R", "C", "K" in "And what is K?")."""
    return tok.isdigit() or tok.isupper() and tok not in ("I", "A")


def text_stems(text: str) -> set[str]:
    """Every stem in a text, parts of hyphenated words included (for lookups)."""
    out = set()
    for tok in tokens(text):
        out.add(stem(tok))
        if "." in tok:  # "U.N." also as "UN"
            out.add(stem(tok.replace(".", "")))
        for part in re.split(r"[-'’.]", tok):
            if part:
                out.add(stem(part))
    return out | identifiers(text)


_CAPITALISED_RUN = re.compile(r"\b[A-Z][\w]*(?:[ \t]+[A-Z][\w]*)+")


def initialisms(text: str) -> set[str]:
    """The initials of every stretch of two to six capitalised words in `text`, lowercased, as
    an acronym would spell them: "Mozilla Public License" gives "mpl", "pl" and "mp".

        >>> sorted(initialisms("the GNU Lesser General Public License applies"))[:3]
        ['gl', 'glg', 'glgp']
    """
    out = set()
    for m in _CAPITALISED_RUN.finditer(text):
        first = [w[0].lower() for w in m.group(0).split()]
        for i in range(len(first)):
            for j in range(i + 2, min(len(first), i + 6) + 1):
                out.add("".join(first[i:j]))
    return out


@dataclass(frozen=True)
class KeyTerms:
    """The words of a text that a check looks for in the evidence."""

    stems: frozenset[str]  # content stems (`content_stems`)
    names: frozenset[str]  # stems of capitalised words (not sentence-initial) and acronyms
    numbers: frozenset[str]  # digits, as written without thousands separators


def key_terms(text: str) -> KeyTerms:
    names, numbers = set(), set()
    for i, m in enumerate(_TOKEN.finditer(text)):
        tok = m.group(0)
        low = tok.lower()
        if low in STOPWORDS or low in QUESTION_WORDS:
            continue
        if any(ch.isdigit() for ch in tok):
            numbers.add(stem(tok))
        elif tok[0].isupper() and (i > 0 and not _sentence_start(text, m.start())):
            # a hyphenated name ("Artistic-licensed") names its capitalised parts
            parts = [p for p in tok.split("-") if p[:1].isupper() and p.isalpha()]
            names.update(stem(p) for p in (parts if "-" in tok and parts else [tok]))
    return KeyTerms(frozenset(content_stems(text)), frozenset(names), frozenset(numbers))


def _sentence_start(text: str, pos: int) -> bool:
    before = text[:pos].rstrip()
    return not before or before[-1] in '.!?"“”:'
