"""Indexing says what it is doing from the start: reading, then chunking, then embedding, in the
engine's progress hook and on the terminal of `rag index`."""

from __future__ import annotations

import fcntl
import os
import pty
import struct
import subprocess
import sys
import termios

from rag import Settings, update

from .conftest import ROOT


def test_progress_reports_reading_then_chunking_then_embedding(tmp_path, embedder, docs_copy):
    (docs_copy / "broken.txt").write_bytes(b"\x00\x01 binary")
    events: list[tuple[str, int, int]] = []
    settings = Settings.load(env={}, index_dir=str(tmp_path / "index"))
    _, report = update(
        settings, embedder, [docs_copy], progress=lambda d, t, w: events.append((w, d, t))
    )

    phases = [w for w, _, _ in events]
    assert sorted(set(phases), key=phases.index) == ["reading", "chunking", "embedding"]
    assert phases == sorted(phases, key=["reading", "chunking", "embedding"].index)
    reading = [(d, t) for w, d, t in events if w == "reading"]
    assert reading[0] == (0, 3) and reading[-1] == (3, 3)  # the unreadable file is counted too
    chunking = [(d, t) for w, d, t in events if w == "chunking"]
    assert chunking[0] == (0, 2) and chunking[-1] == (2, 2)
    embedding = [(d, t) for w, d, t in events if w == "embedding"]
    assert embedding[0] == (0, report.chunks) and embedding[-1] == (report.chunks, report.chunks)
    for phase in ("reading", "chunking", "embedding"):
        done = [d for w, d, _ in events if w == phase]
        assert done == sorted(done)
    assert report.errors and len(report.added) == 2


def test_rag_index_shows_each_phase_on_a_terminal(tmp_path, docs_copy):
    """On a terminal (a pty here) `rag index` draws a bar for each phase."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAG_")}
    env.update(HF_HUB_OFFLINE="1")
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # 100 columns
    proc = subprocess.Popen(
        [sys.executable, "-m", "rag", "index", str(docs_copy), "--index-dir", str(tmp_path / "i")],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=follower,
        text=True,
    )
    os.close(follower)
    shown = b""
    while True:
        try:
            chunk = os.read(leader, 4096)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        shown += chunk
    out, _ = proc.communicate(timeout=300)
    os.close(leader)
    text = shown.decode("utf-8", "replace")
    assert proc.returncode == 0, text
    assert "2 added" in out
    for phase, unit in (("reading", "file"), ("chunking", "doc"), ("embedding", "chunk")):
        assert f"{phase}: 100%" in text and unit in text, text
    assert text.index("reading") < text.index("chunking") < text.index("embedding")
