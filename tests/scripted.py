"""A generator that replays scripted replies, the way simonw/llm's `MockModel` does.

It is a real `Generator`: the pipeline is handed it like llama.cpp or a server, so a test can
say exactly what "the model" wrote and then assert what the checker made of it. It records
every prompt it was given, so a test can also assert what the model was shown.

    >>> gen = ScriptedGenerator("Paris is in France [1].")
    >>> "".join(gen.stream([{"role": "user", "content": "Where is Paris?"}], 80, 0.0))
    'Paris is in France [1].'
    >>> gen.prompts[0][-1]["content"]
    'Where is Paris?'
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from rag.generate import Message, estimate_tokens


class ScriptedGenerator:
    """Streams the next prepared reply on each call, one word a token; stops after `max_tokens`
    words as a model stops at its token limit, so a long reply comes out cut off mid-sentence.
    A reply that is an exception is raised instead, as llama.cpp raises on a prompt it refuses."""

    def __init__(self, *replies: str | Exception, name: str = "scripted",
                 context_tokens: int = 2048):
        self.name = name
        self.context_tokens = context_tokens
        self.replies: list[str | Exception] = list(replies)
        self.prompts: list[list[Message]] = []  # the messages of each call, in order
        self.calls: list[tuple[int, float]] = []  # (max_tokens, temperature) of each call

    def enqueue(self, *replies: str | Exception) -> None:
        self.replies.extend(replies)

    def count_tokens(self, text: str) -> int:
        return estimate_tokens(text)

    def stream(self, messages: list[Message], max_tokens: int, temperature: float) -> Iterator[str]:
        self.prompts.append([dict(m) for m in messages])
        self.calls.append((max_tokens, temperature))
        if not self.replies:
            raise AssertionError("the scripted generator was called more often than scripted")
        reply = self.replies.pop(0)
        if isinstance(reply, Exception):
            raise reply
        yield from re.findall(r"\s*\S+", reply)[:max_tokens]
