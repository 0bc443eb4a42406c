"""`rag bench`: how fast the engine is, and how retrieval scales, on this machine.

    retrieval   per-query latency at 1k/10k/100k chunks of a synthetic corpus, through the FAISS
                index the store builds (exact below rag.indexing.index.ANN_THRESHOLD, HNSW above), plus HNSW
                recall@10 against exact search
    build       chunks/s through the real indexer and the real MiniLM, and peak memory
    llm         time to first token and tokens/s through the pipeline vs raw llama-cpp-python
    cold start  a fresh `rag ask` process, from start to answer

Every figure is wall-clock time on a machine that may be busy: the load average is recorded with
them. Nothing here reads or writes the user's index; scratch indexes live in a temp folder.
"""

from __future__ import annotations

import json
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np

import rag.indexing.index as rag_index
from bench import headline
from rag.answering.pipeline import Pipeline
from rag.answering.query import read
from rag.answering.retrieve import Retriever
from rag.errors import InputError
from rag.indexing.cpu import cpu, vector_extensions
from rag.indexing.embed import Embedder, load_embedder
from rag.indexing.index import DocEntry, Index, IndexConfig
from rag.indexing.indexer import update
from rag.loader import make_generator, make_models
from rag.reading.chunking import split_sentences
from rag.reading.sentences import READING
from rag.settings import Settings
from rag.types import Answer, Chunk, Document

OUT = Path("bench-results/bench.json")
COLD_QUESTION = "How many Ukrainians have been displaced?"
DEFAULT_SIZES = "1000,10000,100000"
MIX, NOISE, SEED = 3, 1.0, 0  # synthetic vector = mixture of MIX seed vectors + noise of norm NOISE
EF_SWEEP = (200, 400)  # HNSW efSearch values tried besides the production one


@dataclass(frozen=True)
class Plan:
    """How much of each measurement to run."""

    quick: bool
    sizes: tuple[int, ...]  # chunk counts for retrieval
    rounds: int  # passes over the questions at each size
    build_chunks: int
    llm_questions: int
    llm_repeats: int  # runs of each side per question; the fastest counts
    max_tokens: int
    cold_runs: int
    cold_mode: str
    users: int  # people asking at once against `rag serve`
    alone_questions: int  # asked one after another, for answer_p50_ms
    recall_corpora: tuple[str, ...] | None  # None: every benchmark corpus

    @classmethod
    def of(cls, sizes: str, quick: bool, settings: Settings) -> Plan:
        if quick and sizes == DEFAULT_SIZES:
            sizes = "200,1000"
        try:
            parsed = tuple(int(s) for s in sizes.split(",") if s.strip())
        except ValueError:
            parsed = ()
        if not parsed or min(parsed) < 1:
            raise InputError(
                f"--sizes {sizes!r}: give chunk counts separated by commas, like {DEFAULT_SIZES}"
            )
        if quick:  # the child skips loading the LLM, so the quick run stays short
            return cls(True, parsed, 1, 20, 1, 1, 8, 1, "extractive", 3, 2, ("news",))
        return cls(
            False,
            parsed,
            3,
            1200,
            3,
            3,
            settings.max_tokens,
            2,
            settings.mode,
            headline.USERS,
            10,
            None,
        )


# -- small helpers ----------------------------------------------------------------------
def _ms(seconds: float) -> float:
    return round(seconds * 1000, 2)


def _spread(ms: list[float]) -> dict:
    return {
        "p50": round(float(np.percentile(ms, 50)), 2),
        "p95": round(float(np.percentile(ms, 95)), 2),
        "n": len(ms),
    }


def _peak_rss_mb() -> float:
    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # kilobytes on Linux, bytes on macOS
    return round(kb / (1024 * 1024 if sys.platform == "darwin" else 1024), 1)


def _repo_file(name: str) -> Path:
    for root in (Path.cwd(), Path(__file__).resolve().parent.parent):
        if (root / name).exists():
            return root / name
    raise InputError(
        f"{name} not found: run `rag bench` from the project folder "
        "(it uses seeds/ and eval/gold.jsonl)"
    )


def machine() -> dict:
    name, flags = cpu()
    return {
        "cpu": name,
        "cores": os.cpu_count(),
        "load_start": _load(),
        "vector_extensions": vector_extensions(flags),
        "caps": _caps(),
    }


def _caps() -> dict:
    """What the runtimes were allowed to use: a cap on oneDNN (OpenVINO's CPU kernels) and the
    instruction sets this llama.cpp build was compiled for."""
    out = {"ONEDNN_MAX_CPU_ISA": os.environ.get("ONEDNN_MAX_CPU_ISA", "")}
    try:
        import llama_cpp

        info = llama_cpp.llama_print_system_info().decode()
        out["llama_cpp"] = sorted(
            k.strip()
            for k, _, v in (p.partition("=") for p in info.replace("CPU :", "").split("|"))
            if v.strip() == "1"
        )
    except Exception:  # noqa: BLE001 - a figure about the machine, never a reason to fail
        out["llama_cpp"] = []
    return out


def _threads() -> dict:
    """The thread pools that single queries run on (each busy-waits when the cores are shared)."""
    import faiss
    import torch

    return {"torch": torch.get_num_threads(), "faiss_omp": faiss.omp_get_max_threads()}


def _load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def gold_questions(path: Path) -> tuple[list[str], list[tuple[str, str]]]:
    """The standalone questions, and the (question, follow-up) pairs, of the gold set."""
    rows = [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x.strip()]
    alone = [r["question"] for r in rows if not r.get("history")]
    pairs = [
        (r["history"][-1], r["question"]) for r in rows if r.get("history") and r["answerable"]
    ]
    return alone, pairs


def seed_sentences(index: Index) -> tuple[list[str], list[str]]:
    """Every sentence of the indexed documents, and every pair of neighbouring sentences."""
    sentences, pairs = [], []
    for entry in index.docs.values():
        text = entry.doc.text
        sents = [text[s.start : s.end] for s in split_sentences(text) if not s.heading]
        sentences += sents
        pairs += [f"{a} {b}" for a, b in zip(sents, sents[1:], strict=False)]
    return sentences, pairs


# -- 1. retrieval at scale --------------------------------------------------------------
def synthetic_index(texts: list[str], vecs: np.ndarray, n: int, config: IndexConfig) -> Index:
    """n chunks; chunk i is a normalized Dirichlet mixture of MIX seed vectors plus Gaussian
    noise, its text those MIX seed texts joined (so BM25 has real words). Deterministic."""
    rng = np.random.default_rng(SEED)
    picks = rng.integers(0, len(texts), (n, MIX))
    weights = rng.dirichlet(np.ones(MIX), n).astype(np.float32)
    dim = vecs.shape[1]
    out = rng.standard_normal((n, dim), dtype=np.float32) * (NOISE / np.sqrt(dim))
    for j in range(MIX):
        out += weights[:, j : j + 1] * vecs[picks[:, j]]
    out /= np.linalg.norm(out, axis=1, keepdims=True)
    doc = Document("synthetic", "Synthetic corpus", "(synthetic)", "", "")
    joined = (" ".join(texts[j] for j in row) for row in picks)
    chunks = [Chunk("synthetic", t, 0, len(t)) for t in joined]
    return Index(config, {"synthetic": DocEntry(doc)}, chunks, out)


def _recall(want: np.ndarray, got: np.ndarray) -> float:
    hits = [len(set(a) & set(b)) / want.shape[1] for a, b in zip(want, got, strict=True)]
    return round(float(np.mean(hits)), 3)


def hnsw_quality(index: Index, qvecs: np.ndarray) -> dict:
    """recall@10 of the index against exact search on the same vectors, at the production
    efSearch and at the EF_SWEEP values (with their per-query latency)."""
    import faiss

    exact = faiss.IndexFlatIP(index.vectors.shape[1])
    exact.add(index.vectors)
    want = exact.search(qvecs, 10)[1]
    hnsw = index.faiss_index.hnsw
    production, sweep = hnsw.efSearch, {}
    for ef in sorted({production, *EF_SWEEP}):
        hnsw.efSearch = ef
        times, got = [], []
        for v in qvecs:
            t = time.perf_counter()
            got.append(index.search(v[None], 10)[1][0])
            times.append(_ms(time.perf_counter() - t))
        sweep[str(ef)] = {
            "recall_at_10": _recall(want, np.stack(got)),
            "p50_ms": _spread(times)["p50"],
        }
    hnsw.efSearch = production
    return {
        "recall_at_10": sweep[str(production)]["recall_at_10"],
        "ef_search": production,
        "ef_sweep": sweep,
    }


def _retrieval_at(
    n: int,
    texts,
    base,
    questions,
    qvecs,
    plan: Plan,
    settings: Settings,
    config: IndexConfig,
    embedder: Embedder,
) -> dict:
    index = synthetic_index(texts, base, n, config)
    t = time.perf_counter()
    faiss_index = index.faiss_index  # rag.indexing.index.build_faiss: the production choice for n
    build_s = time.perf_counter() - t
    retriever = Retriever(index, embedder, settings.retrieval)
    t = time.perf_counter()
    retriever.retrieve(questions[0], settings.top_k, qvec=qvecs[0])  # builds BM25 lazily
    first_ms = _ms(time.perf_counter() - t)
    depth = max(settings.top_k * 4, 20)  # what Retriever.retrieve asks FAISS for
    dense, path = [], []
    for _ in range(plan.rounds):
        for q, v in zip(questions, qvecs, strict=True):
            t = time.perf_counter()
            index.search(v[None], depth)
            dense.append(_ms(time.perf_counter() - t))
            t = time.perf_counter()
            retriever.retrieve(q, settings.top_k, qvec=v)
            path.append(_ms(time.perf_counter() - t))
    row = {
        "chunks": n,
        "faiss": type(faiss_index).__name__,
        "faiss_build_s": round(build_s, 2),
        "first_query_ms": first_ms,
        "retrieve_ms": _spread(path),
        "faiss_ms": _spread(dense),
    }
    if n > rag_index.ANN_THRESHOLD:
        row.update(hnsw_quality(index, qvecs))
    return row


def bench_retrieval(
    embedder: Embedder,
    texts: list[str],
    questions: list[str],
    plan: Plan,
    settings: Settings,
    progress: Callable[[str], None],
) -> dict:
    base = embedder.embed(texts)
    embed_ms, qvecs = [], []
    for q in questions:  # the query's own embedding, uncached, as a new question pays it
        t = time.perf_counter()
        qvecs.append(embedder.embed([q])[0])
        embed_ms.append(_ms(time.perf_counter() - t))
    qvecs = np.stack(qvecs)
    config = IndexConfig(
        embedder.name, embedder.dim, settings.chunk_size, settings.chunk_overlap, READING
    )
    rows = []
    for n in plan.sizes:
        progress(f"retrieval at {n:,} chunks")
        rows.append(
            _retrieval_at(n, texts, base, questions, qvecs, plan, settings, config, embedder)
        )
    return {
        "corpus": (
            f"N vectors, each a normalized Dirichlet mixture of {MIX} of the {len(texts)} "
            "MiniLM vectors of the seed sentences and neighbouring-sentence pairs, plus "
            f"Gaussian noise of norm {NOISE} (numpy seed {SEED}); chunk text = those "
            f"{MIX} texts joined"
        ),
        "queries": f"{len(questions)} gold questions x {plan.rounds} round(s), vector given",
        "path": (
            f"retrieve = Retriever.retrieve ({settings.retrieval}, top_k {settings.top_k}): "
            f"FAISS + BM25 + fusion; faiss = Index.search alone; 1st query = the first "
            "retrieve, which builds the in-memory BM25 index"
        ),
        "query_embed_ms": _spread(embed_ms),
        "sizes": rows,
        "peak_rss_mb": _peak_rss_mb(),
    }


# -- 2. index build ---------------------------------------------------------------------
class _TimedEmbedder:
    """Counts the seconds spent embedding, to split the build time."""

    def __init__(self, inner: Embedder):
        self.inner, self.name, self.dim, self.seconds = inner, inner.name, inner.dim, 0.0

    def embed(self, texts: list[str]) -> np.ndarray:
        t = time.perf_counter()
        try:
            return self.inner.embed(texts)
        finally:
            self.seconds += time.perf_counter() - t


def write_documents(sentences: list[str], n_chunks: int, chunk_size: int, folder: Path) -> int:
    """Articles of shuffled seed sentences, enough for about n_chunks chunks. Deterministic."""
    rng = random.Random(SEED)
    folder.mkdir(parents=True)
    paras, per_para = 12, 4
    mean_len = statistics.mean(len(s) for s in sentences)
    per_doc = max(1, int(paras * per_para * mean_len / max(chunk_size - mean_len, 1)))
    n_docs = max(1, round(n_chunks / per_doc))
    for d in range(n_docs):
        body = "\n\n".join(" ".join(rng.sample(sentences, per_para)) for _ in range(paras))
        (folder / f"article-{d:04d}.txt").write_text(f"Synthetic article {d}\n\n{body}\n")
    return n_docs


def bench_build(
    embedder: Embedder, sentences: list[str], plan: Plan, settings: Settings, tmp: Path
) -> dict:
    n_docs = write_documents(sentences, plan.build_chunks, settings.chunk_size, tmp / "docs")
    timed = _TimedEmbedder(embedder)
    rss_before = _peak_rss_mb()
    t = time.perf_counter()
    _, report = update(settings.replace(index_dir=str(tmp / "build-index")), timed, [tmp / "docs"])
    seconds = time.perf_counter() - t
    return {
        "documents": n_docs,
        "chunks": report.chunks,
        "seconds": round(seconds, 2),
        "chunks_per_s": round(report.chunks / seconds, 1),
        "embedding_share": round(timed.seconds / seconds, 3),
        "peak_rss_mb_before": rss_before,
        "peak_rss_mb": _peak_rss_mb(),
        "memory": "ru_maxrss, the whole process's peak resident memory so far, models included",
    }


# -- 3. the LLM: our pipeline vs raw llama-cpp-python -----------------------------------
def _rate(stamps: list[float]) -> float:
    return round((len(stamps) - 1) / (stamps[-1] - stamps[0]), 1) if len(stamps) > 1 else 0.0


def _time_pipeline(pipeline: Pipeline, question: str, history=()) -> dict | None:
    """Timings of one answer, or None if it came without the model (an abstention)."""
    t0 = time.perf_counter()
    stamps, answer = [], None
    for event in pipeline.stream(question, history):
        if isinstance(event, Answer):
            answer = event
        else:
            stamps.append(time.perf_counter())
    end = time.perf_counter()
    if not stamps or answer is None:
        return None
    own = {
        k: round(answer.timings[k], 2) for k in ("retrieve_ms", "first_answer_ms", "generate_ms")
    }
    return {
        "first_token_ms": _ms(stamps[0] - t0),
        "total_ms": _ms(end - t0),
        "tokens": len(stamps),
        "tokens_per_s": _rate(stamps),
        **own,
        "check_ms": _ms(end - stamps[-1]),
        "mode": answer.mode,
    }


def _time_raw(llm, messages: list[dict], max_tokens: int, temperature: float) -> dict:
    """The same messages straight through llama-cpp-python, with the sampling arguments that
    LlamaCppGenerator.stream passes."""
    t0 = time.perf_counter()
    stamps = []
    for part in llm.create_chat_completion(
        messages=messages,
        max_tokens=max_tokens,
        temperature=temperature,
        top_k=1 if temperature == 0 else 40,
        repeat_penalty=1.1,
        stream=True,
    ):
        if part["choices"][0]["delta"].get("content"):
            stamps.append(time.perf_counter())
    end = time.perf_counter()
    return {
        "first_token_ms": _ms(stamps[0] - t0) if stamps else None,
        "total_ms": _ms(end - t0),
        "tokens": len(stamps),
        "tokens_per_s": _rate(stamps),
        "context_tokens": llm.n_tokens,
    }


def _compare(
    s: Settings, index: Index, embedder: Embedder, generator, question: str, repeats: int
) -> dict | None:
    """The fastest of `repeats` runs of each side, or None if the pipeline answers without the
    LLM. Each pipeline run is a new Pipeline (no cached embeddings, as for a new question), and
    the KV cache is cleared before every run, so both sides evaluate the whole prompt."""
    ours, raw = [], []
    for _ in range(repeats):
        pipeline = Pipeline(s, index, embedder, generator)
        generator.llm.reset()
        if (got := _time_pipeline(pipeline, question)) is None:
            return None
        ours.append(got)
        messages = pipeline.messages(question, pipeline.retrieve(read(question), s).evidence)
        generator.llm.reset()
        raw.append(_time_raw(generator.llm, messages, s.max_tokens, s.temperature))
    best, base = min(ours, key=lambda r: r["total_ms"]), min(raw, key=lambda r: r["total_ms"])
    return {
        "question": question,
        "ours": best,
        "raw": base,
        "ratio": round(best["total_ms"] / base["total_ms"], 3),
        "generation_ratio": round(best["generate_ms"] / base["total_ms"], 3),
    }


def _followup(
    s: Settings,
    index: Index,
    embedder: Embedder,
    generator,
    pairs: list[tuple[str, str]],
    repeats: int,
) -> dict:
    """Time to first token of a follow-up asked right after its first question (the KV cache
    still holds the first prompt), and with the KV cache cleared in between; the fastest of
    `repeats` runs each. Both start from a new Pipeline that has answered the first question,
    so they differ only in the KV cache."""

    def after_first(first: str) -> Pipeline | None:
        pipeline = Pipeline(s, index, embedder, generator)
        generator.llm.reset()
        return pipeline if _time_pipeline(pipeline, first) else None

    for first, second in pairs:
        warm, cold = [], []
        for _ in range(repeats):
            if (pipeline := after_first(first)) is None:
                break
            warm.append(_time_pipeline(pipeline, second, [first]))
            if (pipeline := after_first(first)) is None:
                break
            generator.llm.reset()
            cold.append(_time_pipeline(pipeline, second, [first]))
        if len(warm) == len(cold) == repeats and all(warm + cold):
            fastest = min(warm, key=lambda r: r["first_token_ms"])
            return {
                "first": first,
                "question": second,
                "ours": fastest,
                "kv_cleared": min(cold, key=lambda r: r["first_token_ms"]),
            }
    return {}


def bench_llm(
    settings: Settings,
    index: Index,
    embedder: Embedder,
    questions: list[str],
    pairs: list[tuple[str, str]],
    plan: Plan,
) -> dict:
    s = settings.replace(mode="generate", max_tokens=plan.max_tokens)
    t = time.perf_counter()
    generator = make_generator(s)
    load_s = time.perf_counter() - t
    if not hasattr(generator, "llm"):
        return {"skipped": "the LLM is a server (--llm-url): no raw llama.cpp to compare with"}
    runs = []
    for q in questions:
        if len(runs) < plan.llm_questions:
            if run := _compare(s, index, embedder, generator, q, plan.llm_repeats):
                runs.append(run)
    followup = _followup(s, index, embedder, generator, pairs, plan.llm_repeats)
    return {
        "model": generator.name,
        "load_s": round(load_s, 2),
        "threads": s.threads,
        "max_tokens": s.max_tokens,
        "repeats": plan.llm_repeats,
        "runs": runs,
        "ratio": statistics.median(r["ratio"] for r in runs) if runs else None,
        "followup": followup,
        "followup_ttft_ms": followup["ours"]["first_token_ms"] if followup else None,
    }


# -- 4. cold start ----------------------------------------------------------------------
def _vm_hwm_mb(pid: int) -> float:
    """The peak resident memory of a running process (Linux; 0 elsewhere or once it exited)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def _run_child(cmd: list[str], env: dict, limit_s: float = 600) -> tuple[int, str, str, float]:
    """(exit code, stdout, stderr, peak RSS in MB sampled every 0.1 s) of a command, killed
    after limit_s. getrusage(RUSAGE_CHILDREN) would not do: Linux carries the forking parent's
    peak over exec."""
    peak, deadline = 0.0, time.monotonic() + limit_s
    with subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    ) as p:
        while True:
            try:
                out, err = p.communicate(timeout=0.1)
                return p.returncode, out, err, round(peak, 1)
            except subprocess.TimeoutExpired:
                peak = max(peak, _vm_hwm_mb(p.pid))
                if time.monotonic() > deadline:
                    p.kill()
                    out, err = p.communicate()
                    return -9, out, f"{err}\nkilled after {limit_s:.0f} s", round(peak, 1)


def bench_cold_start(settings: Settings, index_dir: Path, plan: Plan) -> dict:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    env.update({f"RAG_{f.name.upper()}": str(getattr(settings, f.name)) for f in fields(settings)})
    env.update(RAG_INDEX_DIR=str(index_dir), RAG_MODE=plan.cold_mode)
    walls, answer_ms, modes, peaks = [], [], [], []
    for _ in range(plan.cold_runs):
        t = time.perf_counter()
        code, out, err, peak = _run_child(
            [sys.executable, "-m", "rag", "ask", "--json", COLD_QUESTION], env
        )
        walls.append(round(time.perf_counter() - t, 2))
        if code != 0:
            last = (err.strip().splitlines() or ["no output"])[-1]
            return {"error": f"`rag ask` exited {code}: {last}", "runs_s": walls}
        answer = json.loads(out.splitlines()[-1])
        modes.append(answer["mode"])
        answer_ms.append(answer["timings"]["total_ms"])
        peaks.append(peak)
    return {
        "question": COLD_QUESTION,
        "mode": plan.cold_mode,
        "runs_s": walls,
        "wall_s": statistics.median(walls),
        "answer_ms": answer_ms,
        "answer_modes": modes,
        "peak_rss_mb": max(peaks),
    }


# -- the whole run ----------------------------------------------------------------------
def run(settings: Settings, plan: Plan, progress: Callable[[str], None] = lambda _: None) -> dict:
    results: dict = {"machine": machine(), "quick": plan.quick}
    t = time.perf_counter()
    embedder = load_embedder(settings.embed_model, settings.embed_backend)
    results["machine"]["embedder_load_s"] = round(time.perf_counter() - t, 2)
    results["machine"]["embedder"] = embedder.name  # the backend it really runs on
    results["machine"]["threads"] = _threads()
    seeds, (questions, pairs) = _repo_file("seeds"), gold_questions(_repo_file("eval/gold.jsonl"))
    with tempfile.TemporaryDirectory(prefix="rag-bench-") as tmp:
        seed_dir = Path(tmp) / "seed-index"
        seed_index, _ = update(settings.replace(index_dir=str(seed_dir)), embedder, [seeds])
        sentences, neighbours = seed_sentences(seed_index)
        progress(f"index build (~{plan.build_chunks} chunks)")
        results["build"] = bench_build(embedder, sentences, plan, settings, Path(tmp))
        results["retrieval"] = bench_retrieval(
            embedder, sentences + neighbours, questions, plan, settings, progress
        )
        progress("LLM")
        results["llm"] = bench_llm(settings, seed_index, embedder, questions, pairs, plan)
        progress("cold start")
        results["cold_start"] = bench_cold_start(settings, seed_dir, plan)
        progress(f"{plan.alone_questions} questions, one after another")
        alone = settings if not plan.quick else settings.replace(mode="extractive")
        generator, reader = make_models(alone, with_llm=alone.mode == "generate")
        results["single_user"] = headline.single_user(
            Pipeline(alone, seed_index, embedder, generator, reader),
            questions[: plan.alone_questions],
        )
        del generator, reader
        progress(f"{plan.users} people at once")
        results["users"] = headline.concurrent_users(
            seeds, questions, plan.users, mode="extractive" if plan.quick else ""
        )
    progress("recall of the shipped embedder")
    results["recall"] = headline.recall_delta(settings, plan.recall_corpora)
    results["headline"] = headline.headline(results)
    results["machine"]["load_end"] = _load()
    results["targets"] = verdicts(results)
    return results


def verdicts(r: dict) -> list[dict]:
    """Each target this run measured, with its figure and whether it is met."""
    sizes = {row["chunks"]: row for row in r["retrieval"]["sizes"]}
    recalls = [row["recall_at_10"] for row in sizes.values() if "recall_at_10" in row]
    llm, cold = r["llm"], r["cold_start"]
    figures = [
        ("retrieval p50 at 10,000 chunks (ms)", sizes.get(10_000, {}).get("retrieve_ms"), 15, "<="),
        (
            "retrieval p50 at 100,000 chunks (ms)",
            sizes.get(100_000, {}).get("retrieve_ms"),
            50,
            "<=",
        ),
        ("HNSW recall@10 (lowest over sizes)", min(recalls) if recalls else None, 0.95, ">="),
        ("index build (chunks/s)", r["build"]["chunks_per_s"], 60, ">="),
        ("pipeline / raw llama.cpp time (median)", llm.get("ratio"), 1.15, "<="),
        (
            "first answer p50, 20 people at once (ms)",
            r["headline"]["first_answer_p50_ms_20_users"] if r["users"]["users"] == 20 else None,
            1000,
            "<=",
        ),
        ("the reader's verdict p50, one person (ms)", r["headline"]["reader_p50_ms"], 2000, "<="),
        (
            "final answer p95, 20 people at once (ms)",
            r["headline"]["final_answer_p95_ms_20_users"] if r["users"]["users"] == 20 else None,
            10000,
            "<=",
        ),
        ("recall delta of the shipped embedder", r["headline"]["recall_delta"], -0.02, ">="),
        ("follow-up time to first token (ms)", llm.get("followup_ttft_ms"), 1000, "<="),
        ("cold start to first answer (s, median)", cold.get("wall_s"), 15, "<="),
    ]
    out = []
    for what, value, target, op in figures:
        value = value["p50"] if isinstance(value, dict) else value
        if value is not None:
            met = value <= target if op == "<=" else value >= target
            out.append({"what": what, "value": value, "target": f"{op} {target:g}", "met": met})
    return out


# -- printing ---------------------------------------------------------------------------
def _pair(s: dict) -> str:
    return f"{s['p50']:.1f} / {s['p95']:.1f}"


def _retrieval_lines(ret: dict, embedder_load_s: float) -> list[str]:
    lines = [
        "1. Retrieval per query (target p50 <= 15 ms at 10k, <= 50 ms at 100k; HNSW recall@10 "
        ">= 0.95)",
        f"   corpus: {ret['corpus']}",
        f"   queries: {ret['queries']}",
        f"   {ret['path']}",
        f"   {'chunks':>8}  {'FAISS index':<14}{'build s':>8}{'1st query ms':>13}"
        f"{'retrieve p50/p95 ms':>21}{'faiss p50/p95 ms':>18}{'recall@10':>10}",
    ]
    for row in ret["sizes"]:
        rec = f"{row['recall_at_10']:.3f}" if "recall_at_10" in row else "exact"
        lines.append(
            f"   {row['chunks']:>8,}  {row['faiss']:<14}{row['faiss_build_s']:>8.2f}"
            f"{row['first_query_ms']:>13.1f}{_pair(row['retrieve_ms']):>21}"
            f"{_pair(row['faiss_ms']):>18}{rec:>10}"
        )
        if "ef_sweep" in row:
            sweep = ", ".join(
                f"{ef}: {v['recall_at_10']:.3f} at {v['p50_ms']:.2f} ms"
                for ef, v in row["ef_sweep"].items()
            )
            lines.append(
                f"   {'':>8}  recall@10 by efSearch (production {row['ef_search']}): {sweep}"
            )
    return lines + [
        f"   query embedding (MiniLM, uncached, loaded in {embedder_load_s:.1f} s): "
        f"p50/p95 {_pair(ret['query_embed_ms'])} ms; process peak RSS "
        f"{ret['peak_rss_mb']:.0f} MB"
    ]


def _build_lines(b: dict) -> list[str]:
    return [
        "2. Index build through rag.update with the real MiniLM (target >= 60 chunks/s)",
        f"   {b['chunks']} chunks from {b['documents']} synthetic articles of shuffled seed "
        f"sentences in {b['seconds']:.1f} s = {b['chunks_per_s']:.0f} chunks/s; "
        f"embedding {b['embedding_share']:.0%} of the time",
        f"   peak RSS {b['peak_rss_mb']:.0f} MB ({b['peak_rss_mb_before']:.0f} MB before the "
        f"build; {b['memory']})",
    ]


def _llm_lines(llm: dict) -> list[str]:
    head = "3. LLM: pipeline vs raw llama-cpp-python, same messages and sampling, KV cache cleared"
    if "skipped" in llm:
        return [head, f"   skipped: {llm['skipped']}"]
    lines = [
        f"{head} (target ratio <= 1.15)",
        f"   {llm['model']}, {llm['threads']} threads, max_tokens {llm['max_tokens']}, "
        f"loaded in {llm['load_s']:.1f} s; fastest of {llm['repeats']} run(s) per side; "
        "each pipeline run starts with no cached embeddings",
        f"   {'':<6}{'1st token ms':>13}{'total ms':>10}{'tokens':>7}{'tok/s':>7}"
        f"{'retrieve ms':>12}{'generate ms':>12}{'check ms':>9}",
    ]
    for run in llm["runs"]:
        lines.append(
            f"   {run['question']!r}: ratio {run['ratio']:.2f} end to end, "
            f"{run['generation_ratio']:.2f} generation only"
        )
        for name in ("ours", "raw"):
            x = run[name]
            own = "".join(
                f"{x[k]:>{w}.0f}" if k in x else f"{'-':>{w}}"
                for k, w in (("retrieve_ms", 12), ("generate_ms", 12), ("check_ms", 9))
            )
            lines.append(
                f"   {name:<6}{x['first_token_ms'] or 0:>13.0f}{x['total_ms']:>10.0f}"
                f"{x['tokens']:>7}{x['tokens_per_s']:>7.1f}{own}"
            )
    if f := llm["followup"]:
        lines += [
            f"   follow-up {f['question']!r} right after {f['first']!r} (target <= 1000 ms):",
            f"   first token after {f['ours']['first_token_ms']:.0f} ms (retrieval "
            f"{f['ours']['retrieve_ms']:.0f} ms); with the KV cache cleared "
            f"{f['kv_cleared']['first_token_ms']:.0f} ms (fastest of {llm['repeats']})",
        ]
    return lines


def _cold_lines(c: dict) -> list[str]:
    head = (
        f"4. Cold start: `python -m rag ask --json {COLD_QUESTION!r}`, process start to "
        "answer (target <= 15 s)"
    )
    if "error" in c:
        return [head, f"   failed: {c['error']}"]
    runs = ", ".join(
        f"{w:.1f} s (answering {a / 1000:.1f} s of it)"
        for w, a in zip(c["runs_s"], c["answer_ms"], strict=True)
    )
    return [
        head,
        f"   --mode {c['mode']}: {runs}; answered {', '.join(c['answer_modes'])}",
        f"   peak RSS {c['peak_rss_mb']:.0f} MB (VmHWM sampled every 0.1 s); model files "
        "already in the OS file cache",
    ]


def table(r: dict) -> str:
    m = r["machine"]
    lines = [
        f"rag bench{' --quick' if r['quick'] else ''}: {m['cores']} cores, {m['cpu']} "
        f"({m['vector_extensions']['best']}; caps: {json.dumps(m['caps'])}); embedder "
        f"{m.get('embedder')}; "
        f"load average {m['load_start'][0]} at start, {m['load_end'][0]} at end; threads: "
        + ", ".join(f"{k} {v}" for k, v in m["threads"].items()),
        "",
    ]
    lines += _retrieval_lines(r["retrieval"], m["embedder_load_s"]) + [""]
    lines += _build_lines(r["build"]) + [""] + _llm_lines(r["llm"]) + [""]
    lines += _cold_lines(r["cold_start"]) + [""] + headline.lines(r) + ["", "Targets"]
    lines += [
        f"   {'met   ' if v['met'] else 'MISSED'}  {v['what']}: {v['value']:g} "
        f"(target {v['target']})"
        for v in r["targets"]
    ]
    return "\n".join(lines)


def _progress(what: str) -> None:
    print(f"bench: {what} ...", file=sys.stderr, flush=True)


def main(args, settings: Settings) -> int:
    plan = Plan.of(args.sizes, args.quick, settings)
    results = run(settings, plan, _progress)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(results, indent=1, ensure_ascii=False))
    if args.json:
        print(json.dumps(results, indent=1, ensure_ascii=False))
    else:
        print(table(results))
        print(f"(full results in {OUT})")
    return 0
