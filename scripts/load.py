#!/usr/bin/env python3
"""Load a running `rag serve` with concurrent gradio_client users and check every answer.

    python scripts/load.py --url http://127.0.0.1:7860/ --clients 20 --questions 5 --rounds 3 \
        --pid $(pgrep -f "rag serve")

Each client asks its own questions (drawn from eval/gold.jsonl). Every answer must come back
without error, for the question that was asked, and equal the answer the same question got when
asked alone first: nothing lost or mixed up between users. The server's resident memory is read
after every round (from /proc/PID/status) to show whether it stays flat. Prints figures; exits 1
if any answer was wrong or missing.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def questions(n: int) -> list[str]:
    rows = [json.loads(x) for x in (ROOT / "eval" / "gold.jsonl").read_text().splitlines() if x]
    standalone = [r["question"] for r in rows if not r.get("history")]
    return [standalone[i % len(standalone)] for i in range(n)]


def _key(answer: dict) -> tuple:
    return (answer["answer"], answer["mode"], tuple((c["doc_id"], c["start"]) for c in answer["citations"]))


def _client(url: str):
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # else gradio_client asks the Hub for agent names
    from gradio_client import Client

    return Client(url, verbose=False)


def run(url: str, clients: int, per_client: int, rounds: int, pid: int | None,
        mode: str | None, timeout: float) -> dict:
    pool = questions(clients * per_client)
    reference_client = _client(url)
    reference = {}
    for q in dict.fromkeys(pool):  # each distinct question once, alone
        reference[q] = _key(reference_client.predict(q, [], None, mode, api_name="/ask"))

    def user(i: int) -> list[tuple[str, dict | None, float, str]]:
        client = _client(url)
        out = []
        for q in pool[i * per_client : (i + 1) * per_client]:
            t0 = time.perf_counter()
            try:
                job = client.submit(q, [], None, mode, api_name="/ask")
                out.append((q, job.result(timeout=timeout), time.perf_counter() - t0, ""))
            except Exception as e:  # noqa: BLE001 - every failure is counted and reported
                out.append((q, None, time.perf_counter() - t0, f"{type(e).__name__}: {e}"))
        return out

    memory = [rss_mb(pid)] if pid else []
    latencies, errors, mixed, wall = [], [], [], 0.0
    for _ in range(rounds):
        t0 = time.perf_counter()
        with ThreadPoolExecutor(clients) as ex:
            results = [r for batch in ex.map(user, range(clients)) for r in batch]
        wall += time.perf_counter() - t0
        for q, answer, seconds, error in results:
            latencies.append(seconds)
            if error:
                errors.append(f"{q}: {error}")
            elif answer["question"] != q or _key(answer) != reference[q]:
                mixed.append(f"{q}: got {answer['question']!r} -> {answer['answer'][:80]!r}")
        if pid:
            memory.append(rss_mb(pid))
    asked = clients * per_client * rounds
    return {
        "clients": clients, "questions_per_client": per_client, "rounds": rounds,
        "answered": asked - len(errors), "asked": asked, "errors": errors, "mixed_up": mixed,
        "throughput_per_s": round(asked / wall, 2) if wall else None,
        "latency_p50_s": round(statistics.median(latencies), 2),
        "latency_p95_s": round(statistics.quantiles(latencies, n=20)[-1], 2) if len(latencies) > 1 else None,
        "server_rss_mb_by_round": [round(m, 1) if m else None for m in memory],
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--url", default="http://127.0.0.1:7860/")
    p.add_argument("--clients", type=int, default=20)
    p.add_argument("--questions", type=int, default=5, help="per client per round")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--pid", type=int, help="the server's process id, to read its memory")
    p.add_argument("--mode", choices=["generate", "extractive"], help="default: the server's")
    p.add_argument("--timeout", type=float, default=600.0, help="seconds per answer at most")
    args = p.parse_args()
    result = run(args.url, args.clients, args.questions, args.rounds, args.pid, args.mode, args.timeout)
    print(json.dumps(result, indent=1))
    return 0 if not result["errors"] and not result["mixed_up"] else 1


if __name__ == "__main__":
    sys.exit(main())
