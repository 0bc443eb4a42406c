"""`rag bench --quick` runs end to end and reports every section with numbers (no timing limits:
the figures depend on the machine and on what else it is doing)."""

import json
from numbers import Number

import pytest

import rag.indexing.index as rag_index
from bench.speed import table
from rag.cli import main
from rag.indexing.embed import default_embedder_name

from .conftest import ROOT

pytestmark = pytest.mark.slow


def test_quick_bench_reports_every_section(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # bench-results/ is written here, not into the project
    monkeypatch.setenv("RAG_MODELS_DIR", str(ROOT / "models"))  # the reader `make test` installed
    monkeypatch.setattr(rag_index, "ANN_THRESHOLD", 500)  # so the 1,000-chunk size runs HNSW

    assert main(["bench", "--quick", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out == json.loads((tmp_path / "bench-results" / "bench.json").read_text())

    assert out["quick"] and out["machine"]["cores"] >= 1
    # where it ran: the CPU's vector extensions, what the runtimes may use, the embedder's backend
    ext = out["machine"]["vector_extensions"]
    assert ext["best"] and isinstance(ext["avx2"], bool) and isinstance(ext["avx512_vnni"], bool)
    assert "AVX2" in out["machine"]["caps"]["llama_cpp"]
    assert out["machine"]["embedder"] == default_embedder_name()
    small, large = out["retrieval"]["sizes"]
    assert (small["chunks"], small["faiss"]) == (200, "IndexFlatIP")
    assert (large["chunks"], large["faiss"]) == (1000, "IndexHNSWFlat")
    for row in (small, large):
        assert row["retrieve_ms"]["n"] == row["faiss_ms"]["n"] > 10
        assert 0 < row["retrieve_ms"]["p50"] <= row["retrieve_ms"]["p95"]
    assert 0 <= large["recall_at_10"] <= 1 and "recall_at_10" not in small
    assert str(large["ef_search"]) in large["ef_sweep"]
    assert out["retrieval"]["query_embed_ms"]["p50"] > 0

    build = out["build"]
    assert build["chunks"] >= 10 and build["chunks_per_s"] > 0
    assert 0 < build["embedding_share"] < 1 and build["peak_rss_mb"] > 0

    llm = out["llm"]
    (run,) = llm["runs"]
    # greedy decoding of the same messages: the raw side must produce the very same tokens
    assert run["ours"]["tokens"] == run["raw"]["tokens"] > 0 and run["ratio"] > 0
    assert llm["followup_ttft_ms"] > 0

    cold = out["cold_start"]
    assert "error" not in cold, cold
    assert cold["wall_s"] > 0 and cold["answer_modes"] == ["extractive"]

    # the headline: every figure measured, from a real `rag serve` for the users
    head = out["headline"]
    assert set(head) == {
        "overhead_ratio",
        "answer_p50_ms",
        "index_chunks_per_s",
        "recall_delta",
        "first_answer_p50_ms_20_users",
        "first_answer_p95_ms_20_users",
        "reader",
        "reader_p50_ms",
        "reader_p95_ms",
        "reader_p50_ms_20_users",
        "reader_p95_ms_20_users",
        "final_answer_p50_ms_20_users",
        "final_answer_p95_ms_20_users",
        "verdicts_skipped_20_users",
        "reader_tokens_p50",
        "reader_tokens_p95",
        "vector_extensions",
        "embedder",
    }
    # the reader's verdict, for one person and for the people asking at once
    assert head["reader"].startswith("qwen2.5-coder-1.5b") and head["reader_p50_ms"] > 0
    assert 0 < head["reader_p50_ms_20_users"] <= head["reader_p95_ms_20_users"]
    assert 0 < head["reader_tokens_p50"] <= head["reader_tokens_p95"]
    assert head["final_answer_p50_ms_20_users"] <= head["final_answer_p95_ms_20_users"]
    assert head["verdicts_skipped_20_users"] >= 0
    assert head["overhead_ratio"] == llm["ratio"] and head["index_chunks_per_s"] > 0
    users = out["users"]
    assert users["answered"] == users["users"] == 3 and not users["errors"]
    assert 0 < users["first_answer_p50_ms"] <= users["first_answer_p95_ms"]
    assert out["single_user"]["questions"] == 2 and head["answer_p50_ms"] > 0
    recall = out["recall"]
    assert recall["corpora"] == ["news"] and -1 <= head["recall_delta"] <= 1
    assert 0 < recall["recall_shipped"] <= 1 and 0 < recall["recall_torch"] <= 1
    assert "Headline" in table(out)

    # quick sizes stay under 10k, and only 3 people ask at once: those targets are not judged
    assert len(out["targets"]) == 7
    assert all(
        isinstance(v["value"], Number) and isinstance(v["met"], bool) for v in out["targets"]
    )
    text = table(out)
    for heading in ("1. Retrieval", "2. Index build", "3. LLM", "4. Cold start", "Targets"):
        assert heading in text
