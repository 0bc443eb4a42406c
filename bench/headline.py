"""The figures `rag bench` leads with: how long a person waits, alone and among twenty, how fast
documents are indexed, and what the shipped embedding path costs in retrieval quality.

    first_answer_p50_ms_20_users   20 HTTP clients ask at once against a real `rag serve` (a
    first_answer_p95_ms_20_users   child process), through /ask; each is timed from its request
                                   until the checked answer (the quote or the abstention)
                                   reaches it
    reader_p50_ms, reader_p95_ms   one person: from the question to the reader's verdict (the
                                   judged quote or abstention that replaces the first answer)
    reader_tokens_p50, _p95        the prompt tokens a verdict reads: its latency on any CPU
                                   (about 60 a second on 2 AVX2 cores for the 1.5B reader)
    final_answer_p50_ms_20_users   the 20 clients' final answers (verdict and rewrite, or the
    final_answer_p95_ms_20_users   first answer where the model was busy past max_wait)
    verdicts_skipped_20_users      how many of the 20 verdicts were skipped for that
    reader_p50_ms_20_users         the same for the 20 clients at once
    answer_p50_ms                  one person, questions asked one after another, to the final
                                   answer (the model's checked rewrite, or the quote)
    recall_delta                   recall@k of the gold passages with the shipped embedder minus
                                   with today's full MiniLM (sentence-transformers on torch),
                                   hybrid retrieval, macro-averaged over the benchmark corpora

`overhead_ratio` and `index_chunks_per_s` come from the run's LLM and build sections.
"""

from __future__ import annotations

import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from rag.answering.pipeline import Pipeline
from rag.indexing.embed import Embedder, SentenceTransformerEmbedder, load_embedder
from rag.settings import Settings
from rag.types import Answer

from .evaluate import percentile

USERS = 20


# -- one person ---------------------------------------------------------------------------
def single_user(pipeline: Pipeline, questions: list[str]) -> dict:
    """First and final answer times of questions asked one after another, in the default mode."""
    first, final, verdicts, modes, tokens = [], [], [], [], []
    for q in questions:
        t0 = time.perf_counter()
        seen, answer = None, None
        for event in pipeline.stream(q):
            if isinstance(event, Answer):
                seen = seen if seen is not None else time.perf_counter() - t0
                if answer is not None and answer.pending == "reader" and event.pending != "reader":
                    verdicts.append((time.perf_counter() - t0) * 1000)
                    tokens.append(event.timings.get("reader_tokens", 0.0))
                answer = event
        final.append((time.perf_counter() - t0) * 1000)
        first.append(seen * 1000)
        modes.append(answer.outcome if answer.mode != "generate" else "answer (rewritten)")
    return {
        "questions": len(questions),
        "reader": getattr(pipeline.reader, "name", "none"),
        "first_answer_p50_ms": percentile(first, 50),
        "reader_p50_ms": percentile(verdicts, 50),
        "reader_p95_ms": percentile(verdicts, 95),
        "reader_tokens_p50": percentile(tokens, 50),
        "reader_tokens_p95": percentile(tokens, 95),
        "answer_p50_ms": percentile(final, 50),
        "answer_p95_ms": percentile(final, 95),
        "modes": {m: modes.count(m) for m in sorted(set(modes))},
    }


# -- twenty people ------------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_until_up(url: str, proc: subprocess.Popen, limit_s: float = 300) -> None:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"`rag serve` exited {proc.returncode} before it listened")
        try:
            with urllib.request.urlopen(url + "config", timeout=2):
                return
        except OSError:
            time.sleep(0.5)
    raise RuntimeError(f"`rag serve` did not listen within {limit_s:.0f} s")


def concurrent_users(seeds: Path, questions: list[str], users: int = USERS, mode: str = "") -> dict:
    """`users` clients ask at the same moment (one question each) against a `rag serve` child
    over its own index of `seeds`; per client, the time to its first answer (the checked quote
    or the abstention, which is also the final answer when there is no rewrite) and to its
    final answer."""
    port = _free_port()
    url = f"http://127.0.0.1:{port}/"
    with tempfile.TemporaryDirectory(prefix="rag-bench-serve-") as index_dir:
        env = {**os.environ, "RAG_INDEX_DIR": index_dir, "RAG_PORT": str(port)}
        if mode:
            env["RAG_MODE"] = mode
        cmd = [sys.executable, "-m", "rag", "serve", "--index-path", str(seeds)]
        rows = _ask_all(cmd, env, url, questions, users)
    first = [r["first_ms"] for r in rows if "first_ms" in r]
    final = [r["final_ms"] for r in rows if "final_ms" in r]
    verdict = [r["verdict_ms"] for r in rows if "verdict_ms" in r]
    modes = [r.get("mode", "error") for r in rows]
    return {
        "users": users,
        "answered": len(final),
        "errors": [r["error"] for r in rows if "error" in r][:3],
        "verdicts_skipped": sum(bool(r.get("skipped")) for r in rows),
        "rewrites_skipped": sum(bool(r.get("no_rewrite")) for r in rows),
        "first_answer_p50_ms": percentile(first, 50),
        "first_answer_p95_ms": percentile(first, 95),
        "final_answer_p50_ms": percentile(final, 50),
        "final_answer_p95_ms": percentile(final, 95),
        "reader_p50_ms": percentile(verdict, 50),
        "reader_p95_ms": percentile(verdict, 95),
        "modes": {m: modes.count(m) for m in sorted(set(modes))},
    }


def _answers(client, url: str, question: str) -> Iterator[dict]:
    """The answers to one question as /ask streams them, over gradio's plain HTTP API
    (POST /gradio_api/call/ask, then its server-sent events)."""
    r = client.post(f"{url}gradio_api/call/ask", json={"data": [question, [], None, None]})
    r.raise_for_status()
    with client.stream("GET", f"{url}gradio_api/call/ask/{r.json()['event_id']}") as events:
        event = ""
        for line in events.iter_lines():
            if line.startswith("event:"):
                event = line[6:].strip()
            elif line.startswith("data:"):
                if event == "error":
                    raise RuntimeError(f"/ask failed: {line[5:].strip()[:200]}")
                if event in ("generating", "complete") and (data := json.loads(line[5:])):
                    yield data[0]
                if event == "complete":
                    return


def _ask_all(cmd: list[str], env: dict, url: str, questions: list[str], users: int) -> list[dict]:
    """Start the server, let `users` clients ask at once, stop the server; one row per client.
    The clients are plain HTTP (httpx) threads: gradio_client spends about 50 ms of CPU per
    request, which on a 2-core machine shared with the server was most of what it measured,
    and which a person's browser on their own machine does not cost the server."""
    import httpx

    with subprocess.Popen(
        cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True
    ) as proc:
        try:
            _wait_until_up(url, proc)
            clients = [httpx.Client(timeout=600) for _ in range(users)]
            list(_answers(clients[0], url, questions[0]))  # warm: models and caches loaded
            start = threading.Barrier(users)
            rows: list[dict] = [{} for _ in range(users)]

            def ask(i: int) -> None:
                q = questions[i % len(questions)]
                start.wait()
                t0 = time.perf_counter()
                try:
                    checking = False
                    for out in _answers(clients[i], url, q):
                        now = (time.perf_counter() - t0) * 1000
                        rows[i].setdefault("first_ms", now)
                        if checking and out.get("pending") != "reader":
                            rows[i].setdefault("verdict_ms", now)
                        checking = out.get("pending") == "reader"
                        rows[i]["mode"] = out["mode"]
                        rows[i]["skipped"] = "no verdict:" in out.get("note", "")
                        rows[i]["no_rewrite"] = "no rewrite:" in out.get("note", "")
                    rows[i]["final_ms"] = (time.perf_counter() - t0) * 1000
                except Exception as e:  # noqa: BLE001 - every failure is reported
                    rows[i]["error"] = f"{type(e).__name__}: {e}"

            threads = [threading.Thread(target=ask, args=(i,)) for i in range(users)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        finally:
            proc.terminate()
            proc.wait(timeout=60)
    return rows


# -- retrieval quality of the shipped embedder --------------------------------------------
def recall_delta(settings: Settings, names: list[str] | None = None) -> dict:
    """recall@k (hybrid, top_k of the settings) per benchmark corpus, shipped embedder vs
    sentence-transformers on torch; indexes are cached in eval/corpora/<name>/index*."""
    from .corpora import all_corpora
    from .evaluate import corpus_recall

    corpora = [c for c in all_corpora() if names is None or c.name in names]
    s = settings.replace(mode="extractive", retrieval="hybrid")
    sides: dict[str, Embedder] = {
        "shipped": load_embedder(settings.embed_model, settings.embed_backend),
        "torch": SentenceTransformerEmbedder(settings.embed_model),
    }
    per = {side: corpus_recall(embedder, s, corpora) for side, embedder in sides.items()}
    names_ok = [n for n in per["shipped"] if not np.isnan(per["shipped"][n])]
    avg = {k: statistics.mean(per[k][n] for n in names_ok) if names_ok else None for k in per}
    delta = round(avg["shipped"] - avg["torch"], 4) if names_ok else None
    return {
        "corpora": names_ok,
        "top_k": s.top_k,
        "shipped": sides["shipped"].name,
        "recall_shipped": round(avg["shipped"], 4) if names_ok else None,
        "recall_torch": round(avg["torch"], 4) if names_ok else None,
        "recall_delta": delta,
        "per_corpus": {n: {k: round(per[k][n], 4) for k in per} for n in names_ok},
    }


def headline(results: dict) -> dict:
    """The six figures of the issue, from a run's sections."""
    users, alone = results.get("users", {}), results.get("single_user", {})
    return {
        "overhead_ratio": results["llm"].get("ratio"),
        "answer_p50_ms": alone.get("answer_p50_ms"),
        "index_chunks_per_s": results["build"]["chunks_per_s"],
        "recall_delta": results.get("recall", {}).get("recall_delta"),
        "first_answer_p50_ms_20_users": users.get("first_answer_p50_ms"),
        "first_answer_p95_ms_20_users": users.get("first_answer_p95_ms"),
        "final_answer_p50_ms_20_users": users.get("final_answer_p50_ms"),
        "final_answer_p95_ms_20_users": users.get("final_answer_p95_ms"),
        "verdicts_skipped_20_users": users.get("verdicts_skipped"),
        "reader": alone.get("reader"),
        "reader_p50_ms": alone.get("reader_p50_ms"),
        "reader_p95_ms": alone.get("reader_p95_ms"),
        "reader_tokens_p50": alone.get("reader_tokens_p50"),
        "reader_tokens_p95": alone.get("reader_tokens_p95"),
        "reader_p50_ms_20_users": users.get("reader_p50_ms"),
        "reader_p95_ms_20_users": users.get("reader_p95_ms"),
        "vector_extensions": results["machine"]["vector_extensions"]["best"],
        "embedder": results["machine"].get("embedder"),
    }


def lines(results: dict) -> list[str]:
    h, users, alone = results["headline"], results.get("users", {}), results.get("single_user", {})
    rec = results.get("recall", {})
    out = ["Headline"]
    for k, v in h.items():
        out.append(f"   {k:<30} {v if v is not None else 'not measured'}")
    if alone:
        out.append(
            f"   one person, {alone['questions']} questions: first answer p50 "
            f"{alone['first_answer_p50_ms']} ms, the reader's verdict p50/p95 "
            f"{alone['reader_p50_ms']} / {alone['reader_p95_ms']} ms ({alone['reader']}), "
            f"final p50/p95 {alone['answer_p50_ms']} / "
            f"{alone['answer_p95_ms']} ms; {json.dumps(alone['modes'])}"
        )
    if users:
        out.append(
            f"   {users['users']} people at once: first answer p50/p95 "
            f"{users['first_answer_p50_ms']} / {users['first_answer_p95_ms']} ms; the "
            f"reader's verdict p50/p95 {users['reader_p50_ms']} / {users['reader_p95_ms']} "
            "ms; final "
            f"answer p50/p95 {users['final_answer_p50_ms']} / "
            f"{users['final_answer_p95_ms']} ms; answered {users['answered']}; "
            f"verdicts skipped (the model busy past max_wait) {users['verdicts_skipped']}, "
            f"rewrites skipped {users['rewrites_skipped']}; "
            f"{json.dumps(users['modes'])}"
            + (f"; errors {users['errors']}" if users["errors"] else "")
        )
    if rec.get("corpora"):
        out.append(
            f"   recall@{rec['top_k']} hybrid, {rec['shipped']} vs torch MiniLM, over "
            f"{', '.join(rec['corpora'])}: {rec['recall_shipped']} vs "
            f"{rec['recall_torch']}"
        )
    return out
