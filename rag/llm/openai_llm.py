"""A generator for any server that speaks the OpenAI chat-completions API (llama.cpp's server,
vLLM, Ollama), over httpx. Its own module, imported only when `--llm-url` is set: httpx adds
about 0.1 s to every command that imports it."""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Iterator

import httpx

from ..errors import ModelError
from .generate import Message, estimate_tokens
from .reader import MAX_PASSAGE_CHARS

log = logging.getLogger(__name__)

RETRIES = 3  # further tries to start a request to an LLM server; none once it streams
BACKOFF = 0.5  # seconds before the first of them, doubled for each next one


class OpenAIGenerator:
    """Any server that speaks the OpenAI chat-completions API, streamed as server-sent events.

    httpx does the HTTP; this class adds what the API needs on top. Starting a request is
    tried again, after 0.5, 1 and 2 s, when nothing is listening yet, the connection drops
    before an answer, or the server answers 5xx (llama.cpp's server answers 503 while it loads
    its model). A reply that has begun to stream is never asked for twice. `timeout` bounds
    every wait: for the connection, for each read, and between two events of a stream, so a
    server that sends nothing but keep-alive comments fails too.
    """

    def __init__(
        self,
        url: str,
        model: str = "",
        timeout: float = 60.0,
        context_tokens: int = 2048,
        retries: int = RETRIES,
        backoff: float = BACKOFF,
        api_key: str = "",
    ):
        if not url.startswith(("http://", "https://")):
            raise ModelError(f"--llm-url must start with http:// or https://, got {url!r}")
        try:
            httpx.URL(url)
        except httpx.InvalidURL as e:
            raise ModelError(
                f"--llm-url {url!r} is not a URL ({e}): give http://HOST:PORT/v1"
            ) from None
        self.url = url.rstrip("/")
        self.model = model or "default"
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.name = f"{self.model} @ {self.url}"
        self.context_tokens = context_tokens  # the server's own is unknown: the n_ctx setting
        headers = {"Accept": "text/event-stream"}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        self._key = api_key
        self._client = httpx.Client(timeout=timeout, headers=headers)

    def expected_wait(self) -> float:
        return 0.0  # a server queues its own requests

    def count_tokens(self, text: str) -> int:
        return estimate_tokens(text)

    def stream(self, messages: list[Message], max_tokens: int, temperature: float) -> Iterator[str]:
        body = {
            "model": self.model,
            "messages": messages,
            "max_tokens": max_tokens,
            "temperature": temperature,
            "stream": True,
        }
        response = self._open(body)
        try:
            if response.status_code != 200:
                raise self._refused(response)
            yield from self._texts(response)
        except httpx.TimeoutException:
            raise self._timed_out() from None
        except httpx.TransportError as e:  # cut off mid-reply
            raise ModelError(
                f"the LLM server at {self.url} broke off its reply ({_reason(e)}); check it"
            ) from None
        finally:
            response.close()

    def complete(self, body: dict) -> dict:
        """One reply, not streamed, as the server's JSON."""
        response = self._open({**body, "model": self.model, "stream": False})
        try:
            if response.status_code != 200:
                raise self._refused(response)
            data = json.loads(response.read())
        except httpx.TimeoutException:
            raise self._timed_out() from None
        except (ValueError, httpx.TransportError):
            raise ModelError(
                f"the LLM server at {self.url} did not send a JSON reply; check "
                "--llm-url (it ends in /v1)"
            ) from None
        finally:
            response.close()
        if not isinstance(data, dict):
            raise ModelError(f"the LLM server at {self.url} did not send a chat completion")
        return data

    def _open(self, body: dict) -> httpx.Response:
        """`_start`, with what goes wrong before a reply begins said in one line."""
        try:
            return self._start(body)
        except httpx.ConnectTimeout:
            raise self._no_server(f"no answer within {self.timeout:g} s") from None
        except httpx.TimeoutException:
            raise self._timed_out() from None
        except httpx.TransportError as e:  # refused, unknown host, closed at once, not HTTP
            raise self._no_server(_reason(e)) from None

    def _start(self, body: dict) -> httpx.Response:
        """The response to `body`, its headers read and its stream not yet."""
        request = self._client.build_request("POST", f"{self.url}/chat/completions", json=body)
        for attempt in range(self.retries + 1):
            last = attempt == self.retries
            try:
                response = self._client.send(request, stream=True)
            except (httpx.NetworkError, httpx.RemoteProtocolError) as e:
                if last:
                    raise
                why = _reason(e)
            else:
                if response.status_code < 500 or last:
                    return response
                response.close()
                why = f"HTTP {response.status_code}"
            delay = self.backoff * 2**attempt
            log.info("the LLM server at %s: %s; trying again in %g s", self.url, why, delay)
            time.sleep(delay)
        raise AssertionError("unreachable")

    def _texts(self, response: httpx.Response) -> Iterator[str]:
        """The text of each event in a server-sent event stream, until `data: [DONE]`."""
        last_data = time.monotonic()
        events = 0
        for line in response.iter_lines():
            if not line.startswith("data:"):
                # keep-alive comments (": ping") are not an answer: a server that only sends
                # those has stalled, and the read timeout alone never fires
                if time.monotonic() - last_data > self.timeout:
                    raise self._timed_out()
                continue
            last_data = time.monotonic()
            events += 1
            data = line[5:].strip()
            if data == "[DONE]":
                return
            text = self._delta_text(data)
            if text:
                yield text
        if not events:  # a page, or a whole JSON reply: not a stream, so not an answer
            raise self._not_a_stream()

    def _delta_text(self, data: str) -> str:
        """The text in one streamed event; an event that is not one names the problem."""
        try:
            event = json.loads(data)
            message = _error_message(event)
            if message and not event.get("choices"):
                raise ModelError(f"the LLM server at {self.url} reported an error: {message}")
            choices = event.get("choices") or [{}]
            return (choices[0].get("delta") or {}).get("content") or ""
        except (ValueError, TypeError, AttributeError, KeyError, IndexError):
            raise self._not_a_stream() from None

    # -- errors that name the fix -----------------------------------------------------------
    def _no_server(self, reason: str) -> ModelError:
        return ModelError(f"no LLM server at {self.url} ({reason}): start it or unset --llm-url")

    def _timed_out(self) -> ModelError:
        return ModelError(
            f"the LLM server at {self.url} did not answer within {self.timeout:g} s; "
            "check it or raise RAG_LLM_TIMEOUT"
        )

    def _not_a_stream(self) -> ModelError:
        return ModelError(
            f"the LLM server at {self.url} did not send an OpenAI chat-completions stream; "
            "check --llm-url (it ends in /v1)"
        )

    def _key_fix(self) -> str:
        if self._key:
            return "it refused the API key given (RAG_LLM_KEY or llm_key in rag.toml): check it"
        return "it asks for an API key: set RAG_LLM_KEY (or llm_key in rag.toml)"

    def _refused(self, response: httpx.Response) -> ModelError:
        """HTTP 4xx, or 5xx once retries are spent, with the server's own words if it gave any."""
        try:
            message = _error_message(json.loads(response.read()))
        except (ValueError, httpx.HTTPError):
            message = ""
        if self._key:  # some proxies echo the key they refused
            message = message.replace(self._key, "***")
        said = f" ({message})" if message else ""
        code = response.status_code
        fix = {
            404: "check --llm-url (it ends in /v1) and that the server has the model "
            f"{self.model!r}",
            401: self._key_fix(),
            403: self._key_fix(),
        }.get(code, "check its log")
        return ModelError(
            f"the LLM server at {self.url} answered HTTP {code}: {response.reason_phrase}{said}; "
            f"{fix}"
        )


def _error_message(body: object) -> str:
    """The message in an OpenAI-style error body ({"error": {"message": ...}}, or {"error": ...}
    as Ollama sends), on one line; "" if the body holds none."""
    error = body.get("error") if isinstance(body, dict) else None
    if not error:
        return ""
    message = error.get("message", error) if isinstance(error, dict) else error
    return " ".join(str(message).split())[:300]


def _reason(e: Exception) -> str:
    """What went wrong on the connection, in a few words: "Connection refused"."""
    text = " ".join(str(e).split()).rstrip(".") or type(e).__name__
    return re.sub(r"^\[Errno -?\d+\] ", "", text)[:200]


class OpenAIReader:
    """The reader on an OpenAI-compatible server: one reply token per candidate, with the
    log-probabilities of the most likely tokens (`logprobs`, `top_logprobs`). A server that
    sends none (or none for yes and no) gives no verdict, and the engine says so."""

    TOP = 20

    def __init__(self, server: OpenAIGenerator):
        self.server = server
        self.name = server.name

    def expected_wait(self) -> float:
        return 0.0  # the server queues its own requests

    def judge(
        self,
        question: str,
        candidates,
        stop_at: float = 1.0,
        window: int = MAX_PASSAGE_CHARS,
        wait_s: float | None = None,
    ) -> list[float] | None:
        from .reader import NO, YES, messages, p_yes

        yes_words, no_words = {w.strip() for w in YES}, {w.strip() for w in NO}
        out: list[float] = []
        for c in candidates:
            reply = self.server.complete(
                {
                    "messages": messages(question, c, window),
                    "max_tokens": 1,
                    "temperature": 0,
                    "logprobs": True,
                    "top_logprobs": self.TOP,
                }
            )
            top = _top_logprobs(reply)
            if not top:
                return None
            yes = [lp for tok, lp in top if tok.strip() in yes_words]
            no = [lp for tok, lp in top if tok.strip() in no_words]
            p = p_yes(yes, no)
            if p is None:
                return None
            out.append(p)
            if p >= stop_at:
                break
        return out


def _top_logprobs(reply: dict) -> list[tuple[str, float]]:
    """[(token, logprob), ...] of the reply's first token, from an OpenAI chat completion."""
    try:
        content = reply["choices"][0]["logprobs"]["content"]
        return [(str(t["token"]), float(t["logprob"])) for t in content[0]["top_logprobs"]]
    except (KeyError, IndexError, TypeError, ValueError):
        return []
