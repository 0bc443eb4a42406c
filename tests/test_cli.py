"""The `rag` command as a person or a script runs it: real processes, real models."""

import json
import os
import subprocess
import sys

import pytest

from .conftest import ROOT, SEEDS, file_text

pytestmark = pytest.mark.slow


def rag(*args, stdin=None, env=None, index_dir):
    full_env = {**os.environ, "RAG_INDEX_DIR": str(index_dir), **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "rag", *args],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=full_env,
        timeout=600,
    )


@pytest.fixture(scope="module")
def cli_index(tmp_path_factory):
    index_dir = tmp_path_factory.mktemp("cli-index")
    r = rag("index", str(SEEDS), index_dir=index_dir)
    assert r.returncode == 0, r.stderr
    assert "2 added" in r.stdout
    return index_dir


def test_index_twice_does_nothing_the_second_time(cli_index):
    r = rag("index", str(SEEDS), index_dir=cli_index)
    assert r.returncode == 0 and "2 unchanged" in r.stdout


def test_ask_json_reads_many_questions_from_stdin(cli_index):
    questions = (
        "How many Ukrainians have been displaced?\nWhat is the capital of Australia?\n\n   \n"
    )
    r = rag("ask", "--json", "-", stdin=questions, index_dir=cli_index)
    assert r.returncode == 0, r.stderr
    lines = [json.loads(x) for x in r.stdout.splitlines()]
    assert len(lines) == 2
    first, second = lines
    assert "14 million" in first["answer"] and not first["abstained"]
    assert first["mode"] in ("generate", "extractive")
    for c in first["citations"]:
        assert file_text(c["source"])[c["start"] : c["end"]] == c["quote"]
    assert second["abstained"] and second["mode"] == "abstained" and second["citations"] == []
    assert second["answer"].startswith("The documents don't say")


def test_ask_prints_the_answer_and_its_numbered_sources(cli_index):
    r = rag(
        "ask",
        "--mode",
        "extractive",
        "Which",
        "countries",
        "joined",
        "the",
        "backchannel",
        "talks?",
        index_dir=cli_index,
    )
    assert r.returncode == 0, r.stderr
    assert "Turkey and Saudi Arabia" in r.stdout
    assert "[1] Trump and Macron Split" in r.stdout


@pytest.mark.parametrize(
    "args,env,message",
    [
        (["ask", "   "], {}, "error: the question is empty"),
        (["ask", "x" * 50_000], {}, "error: the question is 50,000 characters long"),
        (
            ["ask", "What did Macron say about China?"],
            {"RAG_GGUF": "/nonexistent/model.gguf"},
            "error: no GGUF file at /nonexistent/model.gguf",
        ),
        (
            ["ask", "What did Macron say about China?"],
            {"RAG_EMBED_MODEL": "/nonexistent/minilm"},
            "error: no sentence-transformers model at /nonexistent/minilm",
        ),
        (
            ["index", "/nonexistent/folder"],
            {},
            "error: /nonexistent/folder: no such file or folder",
        ),
    ],
    ids=["blank", "huge", "missing-gguf", "missing-embedder", "missing-folder"],
)
def test_bad_input_is_one_line_and_a_nonzero_exit(cli_index, args, env, message):
    r = rag(*args, env=env, index_dir=cli_index)
    assert r.returncode == 1
    assert r.stderr.strip().splitlines() == [r.stderr.strip()]
    assert r.stderr.startswith(message), r.stderr
    assert "Traceback" not in r.stderr


def test_asking_before_indexing_names_the_fix(tmp_path):
    r = rag("ask", "What did Macron say about China?", index_dir=tmp_path / "none")
    assert r.returncode == 1
    assert f"run `rag index seeds/ --index-dir {tmp_path / 'none'}`" in r.stderr  # this index


def test_a_batch_goes_on_past_token_heavy_and_bad_questions(cli_index):
    """A question under the character limit can still be thousands of tokens (emoji, CJK):
    it gets an answer or its own error line, and the questions after it are answered. A
    question mostly in Chinese characters is told to ask in English."""
    heavy = "How many Ukrainians have been displaced? " + "😀" * 1900
    cjk = "How many Ukrainians have been displaced? " + "乌克兰" * 600
    questions = "\n".join([heavy, "x" * 5000, cjk, "How many Ukrainians have been displaced?"])
    r = rag("ask", "--json", "-", stdin=questions + "\n", index_dir=cli_index)
    assert "Traceback" not in r.stderr, r.stderr
    lines = [json.loads(x) for x in r.stdout.splitlines()]
    assert len(lines) == 4
    assert "error" in lines[1] and "characters long" in lines[1]["error"]
    assert "14 million" in lines[3]["answer"]
    assert "error" not in lines[0]
    assert lines[2]["error"].startswith("ask in English: ")


def test_a_reader_that_stops_early_gets_no_traceback(cli_index):
    full_env = {**os.environ, "RAG_INDEX_DIR": str(cli_index)}
    r = subprocess.run(
        f"{sys.executable} -m rag ask --mode extractive 'How many Ukrainians have been displaced?'"
        " | head -1",
        shell=True,
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=full_env,
        timeout=600,
    )
    assert r.returncode == 0 and "14 million" in r.stdout
    assert "Traceback" not in r.stderr and "BrokenPipe" not in r.stderr, r.stderr


def test_file_names_cannot_forge_lines_or_drive_the_terminal(tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "evil\nname\x1b[31m.txt").write_text(
        "The lighthouse keeper counted 42 ships in the harbour on Monday.\n", encoding="utf-8"
    )
    index_dir = tmp_path / "index"
    assert rag("index", str(docs), index_dir=index_dir).returncode == 0
    r = rag(
        "ask",
        "--mode",
        "extractive",
        "How many ships did the lighthouse keeper count?",
        index_dir=index_dir,
    )
    assert r.returncode == 0, r.stderr
    assert "\x1b" not in r.stdout and "evil\\nname\\x1b[31m.txt" in r.stdout
