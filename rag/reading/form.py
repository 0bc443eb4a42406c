"""What a piece of text is for, read from its form: prose that states something, or a code
block, a configuration example, a command line, a title. A question asked in prose is answered
by prose; the others answer a question that asks for them ("show me an example", "what is the
syntax", "which command").

    >>> form("DSHELL The login shell to be used for all new users. Defaults to /bin/bash.")
    'prose'
    >>> form("Package: *\\nPin: release a=unstable\\nPin-Priority: 990")
    'code'
    >>> form("/etc/adduser.conf - configuration file for adduser(8) and addgroup(8)")
    'title'
    >>> asks_for_form("Show me an example of a pin line."), asks_for_form("What does Pin do?")
    (True, False)
"""

from __future__ import annotations

import re
from typing import Literal

Form = Literal["prose", "code", "title"]

_SENTENCE_END = re.compile(r"[.!?…][\"'”’)\]]*$")
_SYMBOLS = set("=:{}[]()<>|$/\\;*#@~`&%^+_")
_CODE_LINE = re.compile(
    r"^\s*(\$|#|>>>|\.\.\.|//|--?\w|\w[\w.-]*\s*[:=]|[\w./-]+\s+[-\w./]+\s*$|"
    r"[{}\[\]]|</?\w)"
)
_WORD = re.compile(r"[A-Za-z]{2,}")

# questions that ask for a piece of code, an example, a command or a line's format
_ASKS_FOR_FORM = re.compile(
    r"\b(example|examples|sample|syntax|snippet|command|commands|format of|formatted|"
    r"look like|looks like|what do i (type|write|run|put)|how do i (write|type|spell|declare)|"
    r"(show|give) me|template|usage|invocation|(line|piece|bit) of code|code (for|to|that)|"
    r"line for)\b",
    re.IGNORECASE,
)


def form(text: str) -> Form:
    """ "prose" unless the text reads as code or as a title, judged by its form alone:
    sentences end with a full stop and are mostly words; code is dense with symbols or
    made of lines that each look like an assignment, a command or markup; a title is a short
    line that ends like no sentence."""
    plain = text.strip()
    if not plain:
        return "title"
    lines = [ln for ln in plain.splitlines() if ln.strip()]
    chars = [ch for ch in plain if not ch.isspace()]
    symbols = sum(ch in _SYMBOLS for ch in chars) / max(1, len(chars))
    words = _WORD.findall(plain)
    ends = bool(_SENTENCE_END.search(plain))
    if plain.startswith(("$ ", "# ", ">>> ", "```")):
        return "code"
    if len(lines) >= 2 and not ends:
        codey = sum(
            bool(_CODE_LINE.match(ln)) or not _SENTENCE_END.search(ln.strip()) for ln in lines
        )
        if codey == len(lines) and len(words) < 8 * len(lines):
            return "code"
    if symbols > 0.12 and len(words) < 0.25 * len(chars) / 4:
        return "code"
    if not ends and "|" not in plain:  # a table row holds data, as a sentence does
        if _NAME_LINE.match(plain) and len(words) <= 16:
            return "title"
        if symbols > 0.08 and len(words) <= 12:
            return "code"
        if _titled(plain, words):
            return "title"
    return "prose"


_NAME_LINE = re.compile(r"^[\w./:-]+(?:,\s*[\w./:-]+)*\s+[-–—]\s+\w")  # "ls - list files"
_SMALL = frozenset("a an and as at by for from in into of on or the to with".split())


def _titled(plain: str, words: list[str]) -> bool:
    """A short line that ends like no sentence and reads as a title: its words capitalised
    (small words aside), or a name, a dash and what it is, as a manual's NAME line."""
    if len(words) > 12 or len(plain) > 120:
        return False
    if _NAME_LINE.match(plain):
        return True
    big = [w for w in words if w.lower() not in _SMALL]
    return bool(big) and sum(w[0].isupper() for w in big) >= 0.8 * len(big)


def asks_for_form(question: str) -> bool:
    """Does the question ask for a code block, an example, a command or a line's syntax?"""
    return bool(_ASKS_FOR_FORM.search(question))
