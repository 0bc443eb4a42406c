"""Offline, proven: `rag index` and `rag ask` with no network at all, and nothing even trying.

Commands run in a fresh network namespace (`unshare -n`: only loopback, and it is up), with
scripts/netguard/sitecustomize.py logging every non-loopback connect or name lookup made from
Python. HF_HUB_OFFLINE and friends are removed from the environment: the engine must be
offline by itself. The helpers are for any test that needs the same proof, e.g. of the UI:

    prefix = unshare_prefix()                        # None: no namespaces here, skip
    proc = offline_popen(prefix, ["rag", "serve"], log)  # loopback works inside
    ...
    assert network_attempts(log) == []
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import ROOT, file_text

NETGUARD = ROOT / "scripts" / "netguard"
OFFLINE_HINTS = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE")


@functools.cache
def unshare_prefix() -> tuple[str, ...] | None:
    """The command prefix that gives a process no network, or None if this machine cannot."""
    for prefix in (("unshare", "-n"), ("unshare", "-rn")):  # as root; with user namespaces
        try:
            done = subprocess.run([*prefix, "true"], capture_output=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            continue
        if done.returncode == 0:
            return prefix
    return None


def offline_argv(prefix: tuple[str, ...], argv: list[str]) -> list[str]:
    """`argv` in a new network namespace whose loopback is up (so local servers still work)."""
    return [*prefix, "sh", "-c", 'ip link set lo up 2>/dev/null; exec "$@"', "sh", *argv]


def guarded_env(log: Path, base: dict[str, str] | None = None) -> dict[str, str]:
    """`base` (default: this environment) with the network logger on and no offline hints."""
    env = {
        k: v for k, v in (os.environ if base is None else base).items() if k not in OFFLINE_HINTS
    }
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(NETGUARD), env.get("PYTHONPATH")) if p)
    env["NETGUARD_LOG"] = str(log)
    log.write_text("")
    return env


def network_attempts(log: Path) -> list[str]:
    """One line per attempt: what was tried and the Python frames that tried it."""
    return log.read_text(encoding="utf-8").splitlines() if log.exists() else []


def run_offline(prefix, argv, log: Path, *, env=None, cwd=ROOT, timeout=600, **kw):
    return subprocess.run(
        offline_argv(prefix, argv),
        env=guarded_env(log, env),
        cwd=cwd,
        timeout=timeout,
        capture_output=True,
        text=True,
        **kw,
    )


def offline_popen(prefix, argv, log: Path, *, env=None, cwd=ROOT, **kw) -> subprocess.Popen:
    return subprocess.Popen(offline_argv(prefix, argv), env=guarded_env(log, env), cwd=cwd, **kw)


@pytest.fixture()
def no_network():
    prefix = unshare_prefix()
    if prefix is None:
        pytest.skip(
            "`unshare -n true` fails here (needs root or user namespaces): cannot cut the network"
        )
    return prefix


def test_the_logger_catches_lookups_and_connects_but_not_loopback(no_network, tmp_path):
    """Without this, an empty log would prove nothing."""
    code = (
        "import socket\n"
        "for attempt in (lambda: socket.getaddrinfo('huggingface.co', 443),\n"
        "                lambda: socket.create_connection(('203.0.113.7', 80), timeout=1)):\n"
        "    try:\n"
        "        attempt()\n"
        "    except OSError:\n"
        "        pass\n"
        "server = socket.create_server(('127.0.0.1', 0))\n"
        "socket.create_connection(server.getsockname(), timeout=5).close()\n"
        "socket.getaddrinfo('localhost', 80)\n"
        "print('loopback works')\n"
    )
    log = tmp_path / "net.log"
    r = run_offline(no_network, [sys.executable, "-c", code], log, timeout=60)
    assert r.returncode == 0 and "loopback works" in r.stdout, r.stderr
    attempts = network_attempts(log)
    assert any(
        a.startswith("getaddrinfo('huggingface.co') ") and "<string>:2" in a for a in attempts
    )
    assert any(a.startswith("connect to 203.0.113.7:80 ") for a in attempts), attempts
    assert not any("127.0.0.1" in a or "localhost" in a for a in attempts), attempts


@pytest.mark.slow
def test_index_and_ask_work_with_no_network_and_try_none(no_network, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAG_")}
    env["RAG_INDEX_DIR"] = str(tmp_path / "index")
    log = tmp_path / "net.log"

    r = run_offline(no_network, [sys.executable, "-m", "rag", "index", "seeds"], log, env=env)
    assert r.returncode == 0, r.stderr
    assert "2 added" in r.stdout
    assert network_attempts(log) == [], "`rag index` tried the network:\n" + "\n".join(
        network_attempts(log)
    )

    question = "How many Ukrainians have been displaced?"
    r = run_offline(
        no_network, [sys.executable, "-m", "rag", "ask", "--json", question], log, env=env
    )
    assert r.returncode == 0, r.stderr
    assert network_attempts(log) == [], "`rag ask` tried the network:\n" + "\n".join(
        network_attempts(log)
    )
    answer = json.loads(r.stdout)
    assert answer["mode"] in ("generate", "extractive") and "14 million" in answer["answer"]
    assert answer["citations"]
    for c in answer["citations"]:
        assert file_text(str(ROOT / c["source"]))[c["start"] : c["end"]] == c["quote"]


# Runs inside the namespace: start `rag serve`, wait for it, ask through gradio_client and load
# the page, print what came back, stop the server. Everything it touches is on loopback.
_SERVE_AND_ASK = """
import json, os, subprocess, sys, time, urllib.request
os.environ["HF_HUB_OFFLINE"] = "1"  # gradio_client (the test's, not the app's) else asks the Hub
port = sys.argv[1]
server = subprocess.Popen([sys.executable, "-m", "rag", "serve", "--port", port])
url = f"http://127.0.0.1:{port}/"
try:
    for _ in range(600):
        try:
            page = urllib.request.urlopen(url, timeout=5).read().decode()
            break
        except OSError:
            time.sleep(0.5)
    else:
        sys.exit("the server did not start")
    from gradio_client import Client
    answer = Client(url, verbose=False).predict(
        "Which countries were involved in the backchannel talks?", [], None, "extractive",
        api_name="/ask")
    print(json.dumps({"page_bytes": len(page), "answer": answer}))
finally:
    server.terminate()
    server.wait(timeout=60)
"""


@pytest.mark.slow
def test_the_served_ui_works_with_no_network_and_tries_none(no_network, tmp_path):
    from .ui_helpers import free_port

    env = {k: v for k, v in os.environ.items() if not k.startswith("RAG_")}
    env["RAG_INDEX_DIR"] = str(tmp_path / "index")
    log = tmp_path / "net.log"
    r = run_offline(
        no_network,
        [sys.executable, "-c", _SERVE_AND_ASK, str(free_port())],
        log,
        env=env,
        timeout=900,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    assert network_attempts(log) == [], "the served UI tried the network:\n" + "\n".join(
        network_attempts(log)
    )
    result = json.loads(r.stdout.strip().splitlines()[-1])
    assert result["page_bytes"] > 1000
    assert "Turkey and Saudi Arabia" in result["answer"]["answer"]
