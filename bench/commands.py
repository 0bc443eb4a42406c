"""`rag eval` and `rag bench`: commands the benchmark adds to the `rag` CLI through the
`rag.commands` entry point group (pyproject.toml), so the engine never imports the benchmark.

A command is an object with `help`, `add_arguments(parser)` and `run(args, settings) -> int`;
`rag.cli` adds its settings flags to the parser and builds the Settings from them.
"""

from __future__ import annotations

import argparse
from typing import NamedTuple


class Command(NamedTuple):
    help: str
    add_arguments: object  # (argparse.ArgumentParser) -> None
    run: object  # (argparse.Namespace, rag.settings.Settings) -> int


def _eval_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--corpus",
        action="append",
        metavar="NAME",
        help="only this corpus (repeatable; default: all in eval/corpora)",
    )
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    p.add_argument("--out", default="eval/results.json", help="where to write the JSON results")
    p.add_argument(
        "--config",
        action="append",
        metavar="NAME=K:V,...",
        help="a configuration to compare, e.g. bm25=retrieval:bm25 (repeatable)",
    )
    p.add_argument(
        "--compare",
        action="store_true",
        help="compare dense/bm25/hybrid, generate/extractive and k=3/5/8",
    )
    p.add_argument(
        "--shipped",
        action="store_true",
        help="score the fitting corpora with the shipped confidence too (default: each with "
        "the one fitted without its genre, so that its figures are held out)",
    )
    p.add_argument(
        "--plot",
        metavar="FILE.png",
        help="draw the held-out reliability diagram of the confidence (matplotlib)",
    )


def _eval(args, settings) -> int:
    from .evaluate import main

    return main(args, settings)


def _bench_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true")
    p.add_argument("--sizes", default="1000,10000,100000", help="chunk counts for retrieval")
    p.add_argument("--quick", action="store_true", help="a tiny run, to check it works")


def _bench(args, settings) -> int:
    from .speed import main

    return main(args, settings)


eval_command = Command(
    "score answers, citations and abstentions on the benchmark corpora", _eval_arguments, _eval
)
bench_command = Command("measure speed and scale (prints figures)", _bench_arguments, _bench)
