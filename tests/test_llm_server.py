"""The OpenAI-compatible backend against a real server, and against servers that misbehave.

A real `python -m llama_cpp.server` serves the bundled SmolLM2; answers through it are checked
and cited exactly like in-process ones, and at temperature 0 they are the same answers. Small
socket servers in this file play the failures: nobody listening, a server that accepts and says
nothing, one that only sends keep-alive pings, garbage, HTTP 500, a reply cut off mid-stream.
A real `http.server` answers by a script to show what is tried again (nobody listening yet,
5xx) and what is not (4xx, a stall, a reply that has begun).
"""

from __future__ import annotations

import itertools
import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from rag import ModelError, Pipeline, Settings
from rag.llm.generate import bundled_gguf_path
from rag.llm.openai_llm import OpenAIGenerator
from rag.types import Answer

from .conftest import ROOT, file_text

MESSAGES = [{"role": "user", "content": "Say hello."}]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def drain(gen: OpenAIGenerator, bound: float = 60) -> tuple[list[str], BaseException | None]:
    """Consume a stream in a thread, so a hang fails the test instead of blocking it."""
    pieces: list[str] = []
    outcome: list[BaseException | None] = [None]

    def run():
        try:
            pieces.extend(gen.stream(MESSAGES, 20, 0.0))
        except BaseException as e:  # handed to the test thread, which asserts on it
            outcome[0] = e

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(bound)
    assert not t.is_alive(), f"the client was still waiting after {bound} s"
    return pieces, outcome[0]


# -- servers that misbehave ----------------------------------------------------------------
class FakeServer:
    """A one-behaviour TCP server on 127.0.0.1 in a daemon thread; `respond(conn)` plays it."""

    def __init__(self, respond: Callable[[socket.socket, threading.Event], None]):
        self.respond = respond
        self.stop = threading.Event()
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.sock.settimeout(0.2)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/v1"
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            conn.settimeout(5)
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn):
        with conn:
            try:
                conn.recv(65536)  # the request
                self.respond(conn, self.stop)
            except OSError:
                pass

    def close(self):
        self.stop.set()
        self.thread.join(5)
        self.sock.close()


SSE_HEAD = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
)


def _chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


def silent(conn, stop):
    stop.wait(30)


def pings_forever(conn, stop):
    conn.sendall(SSE_HEAD)
    while not stop.wait(0.1):
        conn.sendall(_chunk(b": ping\r\n\r\n"))


def garbage_event(conn, stop):
    conn.sendall(SSE_HEAD + _chunk(b"data: {not json\n\n") + b"0\r\n\r\n")


def wrong_shape(conn, stop):
    conn.sendall(SSE_HEAD + _chunk(b'data: {"choices": "abc"}\n\n') + b"0\r\n\r\n")


def error_event(conn, stop):
    conn.sendall(
        SSE_HEAD
        + _chunk(b'data: {"error": {"message": "context\\nlength exceeded"}}\n\n')
        + b"0\r\n\r\n"
    )


def http_500(conn, stop):
    conn.sendall(b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 4\r\n\r\noops")


def not_http(conn, stop):
    conn.sendall(b"SSH-2.0-OpenSSH_9.6\r\n")


def cut_mid_stream(conn, stop):
    event = b'data: {"choices": [{"delta": {"content": "Hel"}}]}\n\n'
    conn.sendall(SSE_HEAD + _chunk(event) + b"40\r\npartial")  # promises 64 bytes, sends 7
    conn.shutdown(socket.SHUT_RDWR)


def closes_at_once(conn, stop):
    conn.shutdown(socket.SHUT_RDWR)


MISBEHAVING = {
    "silent": (silent, "did not answer within 1 s"),
    "pings-forever": (pings_forever, "did not answer within 1 s"),
    "garbage-event": (garbage_event, "did not send an OpenAI chat-completions stream"),
    "wrong-shape": (wrong_shape, "did not send an OpenAI chat-completions stream"),
    "error-event": (error_event, "reported an error: context length exceeded"),
    "http-500": (http_500, "answered HTTP 500: Internal Server Error; check its log"),
    "not-http": (not_http, "no LLM server at"),
    "cut-mid-stream": (cut_mid_stream, "broke off its reply (peer closed connection"),
    "closes-at-once": (closes_at_once, "no LLM server at"),
}


@pytest.mark.parametrize("name", list(MISBEHAVING))
def test_a_misbehaving_server_is_one_clear_model_error(name):
    behaviour, says = MISBEHAVING[name]
    server = FakeServer(behaviour)
    try:
        _, err = drain(OpenAIGenerator(server.url, timeout=1, backoff=0.01))
    finally:
        server.close()
    assert isinstance(err, ModelError), repr(err)
    assert says in str(err) and server.url in str(err), str(err)
    assert "\n" not in str(err)


def test_nobody_listening_is_a_model_error_after_a_few_quick_tries():
    url = f"http://127.0.0.1:{free_port()}/v1"
    began = time.monotonic()
    _, err = drain(OpenAIGenerator(url, timeout=60), bound=20)  # refused: no waiting for 60 s
    assert 3.5 <= time.monotonic() - began < 15  # tried again after 0.5, 1 and 2 s
    assert isinstance(err, ModelError)
    assert str(err) == f"no LLM server at {url} (Connection refused): start it or unset --llm-url"


def test_a_silent_server_fails_the_pipeline_not_the_process(seed_settings, seed_index, embedder):
    server = FakeServer(silent)
    try:
        p = Pipeline(seed_settings, seed_index, embedder, OpenAIGenerator(server.url, timeout=1))
        with pytest.raises(ModelError, match="did not answer within 1 s"):
            p.ask("How many Ukrainians have been displaced?")
        # extractive mode never calls the server
        assert (
            "14 million"
            in p.ask("How many Ukrainians have been displaced?", mode="extractive").text
        )
    finally:
        server.close()


@pytest.mark.slow
def test_rag_ask_with_a_dead_llm_url_is_one_line_and_exit_1(seed_settings):
    url = f"http://127.0.0.1:{free_port()}/v1"
    env = {**os.environ, "RAG_INDEX_DIR": seed_settings.index_dir, "HF_HUB_OFFLINE": "1"}
    r = subprocess.run(
        # a question the articles answer plainly, so the answer goes to the model to be written
        [
            sys.executable,
            "-m",
            "rag",
            "ask",
            "--llm-url",
            url,
            "How many Ukrainians have been displaced?",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=600,
    )
    assert r.returncode == 1
    assert r.stdout == ""
    assert r.stderr.count("\n") == 1 and "Traceback" not in r.stderr, r.stderr
    assert r.stderr.startswith(f"error: no LLM server at {url} ("), r.stderr


# -- what is tried again, against a real HTTP server ------------------------------------------
EVENTS = [
    b'data: {"choices": [{"delta": {"role": "assistant"}}]}\n\n',
    b": ping\n\n",
    b'data: {"choices": [{"delta": {"content": "Hel"}}]}\n\n',
    b'data: {"choices": [{"delta": {"content": "lo"}}]}\n\n',
    b"data: [DONE]\n\n",
]
STREAM = b"".join(EVENTS)


class ScriptedServer:
    """`http.server` on 127.0.0.1 in a thread. POST number n is answered as `script[n]` says,
    the last entry for all after it: an HTTP status (200 streams STREAM, another status sends
    an OpenAI-style error body), "stall" (says nothing), "cut" (a 200 that stops after its
    first piece of text) or "page" (a 200 that is a web page). `bodies` holds every request body."""

    def __init__(self, *script: int | str, port: int = 0):
        self.bodies: list[dict] = []
        self.headers: list[dict] = []
        self.times: list[float] = []
        self.stop = threading.Event()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                n = len(server.bodies)
                server.times.append(time.monotonic())
                server.headers.append(dict(self.headers))
                server.bodies.append(
                    json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                )
                server.answer(self, script[min(n, len(script) - 1)])

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True).start()

    def answer(self, h: BaseHTTPRequestHandler, what: int | str) -> None:
        if what == "stall":
            self.stop.wait(30)
            return
        body = {
            200: STREAM,
            "cut": b"".join(EVENTS[:3]),
            "page": b"<html><body>Hello</body></html>",
        }.get(what, json.dumps({"error": {"message": f"scripted\n{what}"}}).encode())
        h.send_response(what if isinstance(what, int) else 200)
        h.send_header("Content-Type", "text/html" if what == "page" else "text/event-stream")
        h.send_header("Content-Length", str(len(STREAM) if what == "cut" else len(body)))
        h.end_headers()
        h.wfile.write(body)

    def close(self):
        self.stop.set()
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def scripted():
    servers: list[ScriptedServer] = []

    def start(*script: int | str, port: int = 0) -> ScriptedServer:
        servers.append(ScriptedServer(*script, port=port))
        return servers[-1]

    yield start
    for s in servers:
        s.close()


def test_5xx_is_tried_again_with_the_same_request_after_a_growing_pause(scripted):
    server = scripted(503, 502, 500, 200)
    pieces, err = drain(OpenAIGenerator(server.url, timeout=5, retries=3, backoff=0.1))
    assert err is None and pieces == ["Hel", "lo"]
    assert len(server.bodies) == 4 and all(b == server.bodies[0] for b in server.bodies)
    assert server.bodies[0]["stream"] is True and server.bodies[0]["messages"] == MESSAGES
    pauses = [b - a for a, b in itertools.pairwise(server.times)]
    assert pauses[0] >= 0.1 and pauses[1] >= 0.2 and pauses[2] >= 0.4, pauses


def test_when_the_tries_are_spent_the_last_answer_is_the_error(scripted):
    server = scripted(503)
    _, err = drain(OpenAIGenerator(server.url, timeout=5, retries=2, backoff=0.01))
    assert len(server.bodies) == 3
    assert str(err) == (
        f"the LLM server at {server.url} answered HTTP 503: Service Unavailable "
        "(scripted 503); check its log"
    )


def test_4xx_is_not_tried_again_and_says_what_to_check(scripted):
    server = scripted(404)
    _, err = drain(OpenAIGenerator(server.url, timeout=5, backoff=0.01))
    assert len(server.bodies) == 1
    assert str(err) == (
        f"the LLM server at {server.url} answered HTTP 404: Not Found (scripted 404); "
        "check --llm-url (it ends in /v1) and that the server has the model 'default'"
    )


def test_the_model_name_and_api_key_from_settings_reach_the_server(scripted):
    """Ollama answers only for a model it has by name; a server started with a key answers
    only requests that bring it. Neither the key nor its absence is ever printed."""
    from rag.loader import make_generator

    server = scripted(200)
    settings = Settings.load(
        env={
            "RAG_LLM_URL": server.url,
            "RAG_LLM_MODEL": "qwen2.5:3b",
            "RAG_LLM_KEY": "sk-local-123",
        }
    )
    assert "sk-local-123" not in repr(settings)
    pieces, err = drain(make_generator(settings))
    assert err is None and pieces == ["Hel", "lo"]
    assert server.bodies[0]["model"] == "qwen2.5:3b"
    assert server.headers[0]["Authorization"] == "Bearer sk-local-123"


@pytest.mark.parametrize(
    "key,says",
    [
        ("", "it asks for an API key: set RAG_LLM_KEY"),
        ("401", "it refused the API key given (RAG_LLM_KEY"),
    ],
)
def test_a_refused_key_says_which_setting_to_fix_and_never_shows_it(scripted, key, says):
    """The scripted server's error text is "scripted 401": a key of "401" is echoed back in
    it, as some proxies echo the key they refuse, and must not reach the message."""
    server = scripted(401)
    _, err = drain(OpenAIGenerator(server.url, timeout=5, backoff=0.01, api_key=key))
    assert says in str(err)
    assert ("(scripted ***)" in str(err)) if key else ("(scripted 401)" in str(err))
    assert ("Authorization" in server.headers[0]) is bool(key)


def test_a_server_that_starts_late_is_reached(scripted):
    """Refused twice, then a server is listening: llama.cpp's server takes a while to start."""
    port = free_port()
    late = threading.Timer(0.4, lambda: scripted(200, port=port))
    late.start()
    try:
        gen = OpenAIGenerator(f"http://127.0.0.1:{port}/v1", timeout=5, retries=4, backoff=0.2)
        pieces, err = drain(gen)
    finally:
        late.join()
    assert err is None and pieces == ["Hel", "lo"]


@pytest.mark.parametrize(
    "what,says",
    [
        ("stall", "did not answer within 1 s; check it or raise RAG_LLM_TIMEOUT"),
        ("cut", "broke off its reply (peer closed connection"),
        ("page", "did not send an OpenAI chat-completions stream; check --llm-url"),
    ],
)
def test_a_request_the_server_took_is_not_sent_again(scripted, what, says):
    """Once the server has the request, sending it again could only repeat a reply: a stall,
    a cut stream (after its first piece) and a wrong answer each end in one error."""
    server = scripted(what, 200)
    began = time.monotonic()
    pieces, err = drain(OpenAIGenerator(server.url, timeout=1, backoff=0.01))
    assert isinstance(err, ModelError) and says in str(err), repr(err)
    assert len(server.bodies) == 1 and time.monotonic() - began < 5
    assert pieces == (["Hel"] if what == "cut" else [])


# -- a real llama.cpp server ---------------------------------------------------------------
@pytest.fixture(scope="module")
def llm_server(tmp_path_factory):
    """`python -m llama_cpp.server` on the bundled GGUF; its URL, once it answers."""
    pytest.importorskip("llama_cpp.server.app", reason="pip install 'llama-cpp-python[server]'")
    port = free_port()
    log = tmp_path_factory.mktemp("llm-server") / "server.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "llama_cpp.server",
                "--model",
                str(bundled_gguf_path()),
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--n_ctx",
                "2048",
                # one thread: on 2 shared cores llama.cpp's spinning thread barrier makes 2 threads
                # several times slower; greedy output does not depend on the thread count
                "--n_threads",
                "1",
                "--n_threads_batch",
                "1",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 180
        while True:
            assert proc.poll() is None, f"the server exited:\n{log.read_text()[-3000:]}"
            assert time.monotonic() < deadline, f"no answer in 180 s:\n{log.read_text()[-3000:]}"
            try:
                with urllib.request.urlopen(f"{url}/models", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                time.sleep(0.3)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=30)


@pytest.fixture(scope="module")
def served(llm_server, seed_settings, seed_index, embedder):
    return Pipeline(seed_settings, seed_index, embedder, OpenAIGenerator(llm_server, timeout=300))


QUESTIONS = [
    (
        "How many Ukrainians have been displaced?",
        "14 million",
        "U.N. reports estimate over 10,000 civilian deaths and 14 million displaced Ukrainians.",
    ),
    (
        "Which countries were involved in the backchannel talks?",
        "Saudi Arabia",
        "Sources say both leaders explored backchannel talks involving Turkey and Saudi Arabia.",
    ),
    (
        "What did Trump call France?",
        "great ally",
        "Macron praised Trump’s “pragmatism,” while the former president called France “a great ally.”",
    ),
]


@pytest.mark.slow
def test_the_server_streams_a_draft_then_a_checked_cited_answer(served):
    # only an answer the engine is sure of is rewritten: ask one the articles state plainly
    events = list(served.stream("Which countries were involved in the backchannel talks?"))
    first, *draft, final = events
    assert isinstance(first, Answer) and not first.final and first.citations
    assert draft and all(isinstance(e, str) for e in draft)
    assert isinstance(final, Answer) and final.mode in ("generate", "extractive")
    assert final.citations and final.timings["generate_ms"] > 0
    for c in final.citations:
        assert f"[{c.n}]" in final.text
        assert file_text(c.source)[c.start : c.end] == c.quote


@pytest.mark.slow
@pytest.mark.parametrize("question,fact,sentence", QUESTIONS, ids=[q[0][:30] for q in QUESTIONS])
def test_served_answers_equal_in_process_answers(served, pipeline, question, fact, sentence):
    """Temperature 0 is greedy decoding in both (the server's top-k/top-p/min-p do not matter
    then; both use repeat_penalty 1.1 and the GGUF's chat template), so the same prompt gives
    the same draft and, after the same check, the same answer."""
    remote, local = served.ask(question), pipeline.ask(question)
    for answer in (remote, local):
        assert answer.mode in ("generate", "extractive") and fact in answer.text, answer
        assert sentence in [c.quote for c in answer.citations]
        for c in answer.citations:
            assert file_text(c.source)[c.start : c.end] == c.quote
    assert (remote.mode, remote.text) == (local.mode, local.text)
    assert remote.citations == local.citations


@pytest.mark.slow
def test_a_question_the_articles_do_not_answer_abstains_without_calling_the_server(served):
    answer = served.ask("Who won the 2022 World Cup?")
    assert answer.abstained and answer.citations == () and answer.timings["generate_ms"] == 0
