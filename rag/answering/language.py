"""Is a question written in English? The embedding model, the stemmer and the answer checks all
read English only, so a question in another language would be searched as noise and refused as
"the documents don't say", which is untrue. This says which language it is instead.

No word lists of our own: the script of the letters tells most languages apart, and for those
written in Latin letters, the stopword lists that the bm25s package ships for several languages
are compared with its English one.

    >>> foreign_language("Où le président va-t-il rencontrer son homologue ?")
    'French'
    >>> foreign_language("Where will the two presidents meet?")
    ''
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections import Counter

_LETTERS = re.compile(r"[^\W\d_]+")
_LATIN_LANGUAGES = (
    "danish",
    "dutch",
    "french",
    "german",
    "italian",
    "norwegian",
    "portuguese",
    "spanish",
    "swedish",
    "turkish",
)
MIN_FOREIGN_STOPWORDS = 2  # one shared-looking word ("die", "per") is not a language


@functools.lru_cache(maxsize=1)
def _stopwords() -> tuple[frozenset[str], dict[str, frozenset[str]]]:
    from bm25s import stopwords

    english = frozenset(stopwords.STOPWORDS_EN_PLUS)
    others = {
        name.capitalize(): frozenset(getattr(stopwords, f"STOPWORDS_{name.upper()}"))
        for name in _LATIN_LANGUAGES
    }
    return english, others


def _script(ch: str) -> str:
    name = unicodedata.name(ch, "")
    return name.split(" ")[0] if name else ""


def foreign_language(text: str) -> str:
    """The language or script `text` is written in when that is not English ("French",
    "Cyrillic script", "another language" when two fit equally), else "". Text too short to
    tell is taken as English."""
    letters = [ch for ch in text if ch.isalpha()]
    if not letters:
        return ""
    scripts = Counter(_script(ch) for ch in letters)
    if scripts["LATIN"] * 2 < len(letters):  # mostly another script
        script = next(s for s, _ in scripts.most_common() if s != "LATIN")
        return f"{script if len(script) <= 3 else script.capitalize()} script"
    words = [w.lower() for w in _LETTERS.findall(text)]
    english, others = _stopwords()
    in_english = sum(w in english for w in words)
    counts = {lang: sum(w in stop for w in words) for lang, stop in others.items()}
    n = max(counts.values())
    if n < MIN_FOREIGN_STOPWORDS or n <= in_english:
        return ""
    best = [lang for lang, c in counts.items() if c == n]
    return best[0] if len(best) == 1 else "another language"  # a tie names none
