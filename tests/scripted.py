"""A generator that replays scripted replies, the way simonw/llm's `MockModel` does; and a
reader that gives the verdicts it is scripted with.

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

from rag.errors import ModelError
from rag.llm.generate import Message, estimate_tokens


class ScriptedGenerator:
    """Streams the next prepared reply on each call, one word a token; stops after `max_tokens`
    words as a model stops at its token limit, so a long reply comes out cut off mid-sentence.
    A reply that is an exception is raised instead, as llama.cpp raises on a prompt it refuses."""

    def __init__(
        self, *replies: str | Exception, name: str = "scripted", context_tokens: int = 2048
    ):
        self.name = name
        self.context_tokens = context_tokens
        self.replies: list[str | Exception] = list(replies)
        self.prompts: list[list[Message]] = []  # the messages of each call, in order
        self.calls: list[tuple[int, float]] = []  # (max_tokens, temperature) of each call

    def enqueue(self, *replies: str | Exception) -> None:
        self.replies.extend(replies)

    def expected_wait(self) -> float:
        return 0.0  # a scripted model is never busy

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


class ScriptedReader:
    """A reader that gives the probabilities it was scripted with: `by_words` maps words of a
    candidate to its P(yes); others get `rest`. None for `gives` means no probabilities."""

    name = "scripted"

    def __init__(
        self,
        by_words: dict[str, float] | None = None,
        rest: float = 0.05,
        gives: bool = True,
        fails: bool = False,
    ):
        self.by_words, self.rest, self.gives, self.fails = by_words or {}, rest, gives, fails
        self.seen: list[list[str]] = []

    def judge(self, question, candidates, stop_at=1.0, window=300, wait_s=None):
        if self.fails:
            raise ModelError("the server went away")
        if not self.gives:
            return None
        self.seen.append([c.text for c in candidates])
        out = []
        for c in candidates:
            p = next((v for w, v in self.by_words.items() if w in c.text), self.rest)
            out.append(p)
            if p >= stop_at:
                break
        return out

    def expected_wait(self) -> float:
        return 0.0


def doubting(pipeline):
    """`pipeline` with a reader that finds that no passage answers: what the engine says when
    the documents do not answer, as the shipped reader would judge it."""
    from rag import Pipeline

    return Pipeline(
        pipeline.settings, pipeline.index, pipeline.embedder, None, ScriptedReader(rest=0.02)
    )
