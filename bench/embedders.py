"""Embedding backends side by side: speed on real chunk texts, and what each does to retrieval.

    python -m bench.embedders                 # the table in docs/speed.md (about 15 minutes on 2 cores)
    python -m bench.embedders --quick         # speed and cosine only, no indexes built

Speed: the chunk texts of every benchmark corpus (eval/corpora/*/docs, `python -m bench.corpora
fetch`), as the indexer embeds them (`search_text`, 256 per call), a fixed sample timed in
interleaved rounds (every backend once per round, the order rotating), median per backend. On a
machine shared with other work the absolute figures move; the ratio to today's path (torch,
float32, batch 64) is the figure to read.

Quality: cosine of each backend's vectors to today's on every chunk, and recall@k of the gold
passages per corpus with each backend's own index (dense only, which shows the embedder
alone, and hybrid, the default), macro-averaged over the corpora. No backend was fitted on
any corpus, so every corpus is held out here.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path

import numpy as np

from rag.indexing.embed import (
    Embedder,
    OnnxEmbedder,
    OpenVinoEmbedder,
    SentenceTransformerEmbedder,
)
from rag.indexing.export import quantize_int8
from rag.reading.chunking import chunk_document, search_text
from rag.reading.ingest import find_files, load_document
from rag.settings import Settings

TODAY = "torch fp32, batch 64"
# the batch, thread and runtime variants give their base's vectors (cosine 1.000): their
# recall is that base's, so indexes are built only for backends whose vectors differ
WITH_RECALL = (
    TODAY,
    "torch int8 (quantize_dynamic)",
    "openvino fp32",
    "openvino int8, NNCF (shipped)",
    "onnx int8, per-tensor, all ops",
    "onnx int8, per-channel, all ops",
    "onnx int8, per-channel, MatMul only",
    "model2vec static (distilled locally)",
)


class _TorchInt8(SentenceTransformerEmbedder):
    """torch's dynamic int8 quantization of every Linear layer: no new package."""

    def __init__(self):
        import torch

        super().__init__()
        self._model = torch.ao.quantization.quantize_dynamic(
            self._model, {torch.nn.Linear}, dtype=torch.qint8
        )
        self.name = "all-MiniLM-L6-v2+torch-int8"


class _OnnxVariant(OnnxEmbedder):
    """The exported float32 graph, quantized another way, for comparison only."""

    def __init__(self, label: str, folder: Path, **quant_options):
        super().__init__(int8=False)
        import onnxruntime as ort

        target = folder / f"{label}.onnx"
        quantize_int8(self.model_file, target, **quant_options)
        self._session = ort.InferenceSession(str(target), providers=["CPUExecutionProvider"])
        self.name = f"all-MiniLM-L6-v2+{label}"


class _Static:
    """A model2vec static model (one vector per token, averaged): no transformer at all.
    Distil one locally from the bundled MiniLM (`model2vec.distill.distill(model_name=
    str(bundled_embedder_path()), pca_dims=256)`, about 6 minutes on 2 cores, and its
    `distill` extra) and pass its folder with --model2vec."""

    def __init__(self, folder: str):
        from model2vec import StaticModel

        self._model = StaticModel.from_pretrained(folder)
        self.dim = int(self._model.dim)
        self.name = "model2vec-" + Path(folder).name

    def embed(self, texts: list[str]) -> np.ndarray:
        v = self._model.encode(list(texts)).astype(np.float32)
        return v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-9)


def backends(tmp: Path, model2vec: str = "") -> dict[str, Callable[[], Embedder]]:
    static = (
        {"model2vec static (distilled locally)": lambda: _Static(model2vec)} if model2vec else {}
    )
    return static | {
        TODAY: lambda: SentenceTransformerEmbedder(batch_size=64),
        "torch fp32, batch 16": lambda: SentenceTransformerEmbedder(batch_size=16),
        "torch int8 (quantize_dynamic)": _TorchInt8,
        "onnx fp32 (fused)": lambda: OnnxEmbedder(int8=False),
        "openvino fp32": lambda: OpenVinoEmbedder(),
        "openvino fp32, batch 64": lambda: OpenVinoEmbedder(batch_size=64),
        "openvino int8, NNCF (shipped)": lambda: OpenVinoEmbedder(int8=True),
        "openvino int8, NNCF, batch 64": lambda: OpenVinoEmbedder(int8=True, batch_size=64),
        "onnx int8, per-tensor, all ops": lambda: _OnnxVariant(
            "onnx-int8-tensor", tmp, op_types_to_quantize=None, per_channel=False
        ),
        "onnx int8, per-channel, all ops": lambda: _OnnxVariant(
            "onnx-int8-all", tmp, op_types_to_quantize=None
        ),
        "onnx int8, per-channel, MatMul only": lambda: OnnxEmbedder(int8=True),
        "onnx int8, per-channel, MatMul only, 1 thread": lambda: OnnxEmbedder(int8=True, threads=1),
    }


def chunk_texts() -> dict[str, list[str]]:
    from .corpora import all_corpora

    out = {}
    for c in all_corpora():
        texts = []
        for f in find_files(c.folder):
            d = load_document(f)
            texts += [search_text(d.title, ch) for ch in chunk_document(d.doc_id, d.text)]
        out[c.name] = texts
    return out


def speed(models: dict[str, Embedder], sample: list[str], rounds: int) -> dict[str, float]:
    """chunks/s per backend: median over interleaved rounds, 256 texts per call."""
    times: dict[str, list[float]] = {k: [] for k in models}
    names = list(models)
    for r in range(rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            t = time.perf_counter()
            for i in range(0, len(sample), 256):
                models[name].embed(sample[i : i + 256])
            times[name].append(time.perf_counter() - t)
    return {k: len(sample) / float(np.median(v)) for k, v in times.items()}


def recall(embedder: Embedder, retrieval: str) -> dict[str, float]:
    """recall@k (top_k 5) of the gold passages per corpus, with this embedder's own index."""
    from .corpora import all_corpora
    from .evaluate import corpus_recall

    s = Settings.load(env={}, mode="extractive", retrieval=retrieval)
    return {name: 100.0 * r for name, r in corpus_recall(embedder, s, all_corpora()).items()}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sample", type=int, default=256, help="chunk texts timed per round")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--quick", action="store_true", help="speed and cosine only")
    p.add_argument(
        "--only",
        help="backend labels to run, separated by semicolons (labels hold commas; "
        "today's always runs)",
    )
    p.add_argument("--model2vec", default="", help="a model2vec folder distilled from MiniLM")
    p.add_argument("--out", default="bench-results/embedders.json")
    args = p.parse_args(argv)

    texts = chunk_texts()
    every = [t for ts in texts.values() for t in ts]
    sample = random.Random(0).sample(every, min(args.sample, len(every)))
    say = lambda line: print(line, file=sys.stderr, flush=True)  # noqa: E731
    with tempfile.TemporaryDirectory() as tmp:
        chosen = backends(Path(tmp), args.model2vec)
        if args.only:
            keep = {TODAY, *(label.strip() for label in args.only.split(";"))}
            chosen = {k: v for k, v in chosen.items() if k in keep}
        models: dict[str, Embedder] = {}
        for label, make in chosen.items():
            try:
                models[label] = make()
                models[label].embed(sample[:8])  # warm up
            except Exception as e:  # an optional package missing, an export that fails
                say(f"{label}: skipped ({type(e).__name__}: {e})")
        say(f"timing {len(models)} backends on {len(sample)} chunks x {args.rounds} rounds")
        rate = speed(models, sample, args.rounds)
        ref = models[TODAY].embed(every)
        rows = {}
        for label, m in models.items():
            vecs = m.embed(every)
            cos = (vecs * ref).sum(1) if vecs.shape == ref.shape else np.full(1, np.nan)
            rows[label] = {
                "chunks_per_s": round(rate[label], 1),
                "speedup": round(rate[label] / rate[TODAY], 2),
                "cos_min": round(float(cos.min()), 4),
                "cos_mean": round(float(cos.mean()), 4),
            }
            if not args.quick and label in WITH_RECALL:
                for retrieval in ("dense", "hybrid"):
                    say(f"{label}: recall, {retrieval}")
                    per = recall(m, retrieval)
                    rows[label][f"recall_{retrieval}"] = {k: round(v, 1) for k, v in per.items()}
                    rows[label][f"recall_{retrieval}_avg"] = round(sum(per.values()) / len(per), 1)
    print(table(rows, len(sample), args.rounds, len(every)))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(rows, indent=1))
    return 0


def table(rows: dict[str, dict], n: int, rounds: int, total: int) -> str:
    today = rows[TODAY]
    head = "| backend | chunks/s | × today | cosine to today, min / mean |"
    line = "|---|---|---|---|"
    if "recall_dense_avg" in today:
        head += " recall@5 dense (Δ) | recall@5 hybrid (Δ) |"
        line += "---|---|"
    out = [head, line]
    for label, r in rows.items():
        cosine = "-" if np.isnan(r["cos_min"]) else f"{r['cos_min']:.3f} / {r['cos_mean']:.4f}"
        cells = [label, f"{r['chunks_per_s']:.1f}", f"{r['speedup']:.2f}", cosine]
        for kind in ("dense", "hybrid"):
            if f"recall_{kind}_avg" in r:
                v, d = (
                    r[f"recall_{kind}_avg"],
                    r[f"recall_{kind}_avg"] - today[f"recall_{kind}_avg"],
                )
                cells.append(f"{v:.1f} ({d:+.1f})")
            elif f"recall_{kind}_avg" in today:
                cells.append("same vectors")
        out.append("| " + " | ".join(cells) + " |")
    out.append(
        f"\n{n} chunk texts × {rounds} interleaved rounds, median; cosine over all {total} "
        f"chunks of the benchmark corpora; recall averaged over the corpora; {date.today()}"
    )
    return "\n".join(out)


if __name__ == "__main__":
    sys.exit(main())
