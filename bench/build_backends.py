"""The whole index build with each OpenVINO backend, side by side in one run (interleaved
rounds), on `rag bench`'s synthetic articles: what `--embed-backend auto` was chosen by.

    python -m bench.build_backends                           # this CPU as it is
    ONEDNN_MAX_CPU_ISA=AVX2 python -m bench.build_backends   # as an AVX2 laptop would run it
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import tempfile
from pathlib import Path

from rag import Settings
from rag.indexing.cpu import vector_extensions
from rag.indexing.embed import load_embedder
from rag.indexing.indexer import update

from . import speed


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--backends", default="openvino-int8,openvino")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--chunks", type=int, default=1200, help="about this many chunks per build")
    args = p.parse_args(argv)
    settings = Settings.load()
    plan = dataclasses.replace(speed.Plan.of("1000", False, settings), build_chunks=args.chunks)
    embedders = {b: load_embedder(settings.embed_model, b) for b in args.backends.split(",")}
    rates: dict[str, list[float]] = {b: [] for b in embedders}
    with tempfile.TemporaryDirectory(prefix="rag-builds-") as tmp:
        first = next(iter(embedders.values()))
        seeds, _ = update(
            settings.replace(index_dir=f"{tmp}/seeds"), first, [speed._repo_file("seeds")]
        )
        sentences, _ = speed.seed_sentences(seeds)
        for r in range(args.rounds):
            for backend, embedder in embedders.items():
                built = speed.bench_build(
                    embedder, sentences, plan, settings, Path(tmp) / f"{r}-{backend}"
                )
                rates[backend].append(built["chunks_per_s"])
                print(
                    f"round {r + 1}, {embedder.name}: {built['chunks']} chunks, "
                    f"{built['chunks_per_s']} chunks/s",
                    file=sys.stderr,
                    flush=True,
                )
    print(
        json.dumps(
            {
                "vector_extensions": vector_extensions()["best"],
                "ONEDNN_MAX_CPU_ISA": os.environ.get("ONEDNN_MAX_CPU_ISA", ""),
                "chunks_per_s": rates,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
