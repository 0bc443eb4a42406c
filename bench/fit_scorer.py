"""Fitted evidence scoring, measured leave-one-corpus-out against the hand-set weights.

For every benchmark question, the engine's retrieval gives candidate sentences and their
signals (rag.answering.retrieve.SIGNALS); a candidate is labelled 1 when it overlaps a gold passage.
A logistic regression (scikit-learn) is fitted on all corpora but one and scored on that one,
in turn; sealed corpora are only ever scored. Two questions are asked of each scorer:

- selection: for answerable questions, is the top-scored candidate a gold sentence?
- abstention: does the best candidate's score separate answerable from unanswerable
  questions (ROC AUC; 0.5 is chance)?

    python -m bench.fit_scorer            # prints the table; needs the corpora fetched
    python -m bench.fit_scorer --json
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np

from rag.answering.retrieve import SIGNALS, WEIGHTS
from rag.settings import Settings


def collect(corpora, settings: Settings) -> dict[str, list[dict]]:
    """Per corpus, per question: its signals matrix, candidate labels, and answerability."""
    from rag.answering.pipeline import Pipeline
    from rag.answering.query import read, read_ask
    from rag.indexing.embed import load_embedder

    from .evaluate import _overlaps, corpus_index, corpus_items

    embedder = load_embedder(settings.embed_model, settings.embed_backend)
    out: dict[str, list[dict]] = {}
    pipeline = None
    for c in corpora:
        index = corpus_index(c, settings, embedder)
        if pipeline is None:
            pipeline = Pipeline(settings, index, embedder)
        else:
            pipeline.set_index(index)
        rows = []
        for item in corpus_items(c):
            # the whole question, unsplit, scored against what retrieval searched for
            query = read(item.question, item.history)
            passages = pipeline.retriever.retrieve(query.search, settings.top_k)
            candidates, x = pipeline.retriever.signals(
                read_ask(item.question, query.search), passages
            )
            labels = [int(_overlaps(c.doc.source, c.start, c.end, item.gold)) for c in candidates]
            rows.append(
                {
                    "id": item.id,
                    "answerable": item.answerable,
                    "x": x,
                    "y": np.array(labels, dtype=int),
                }
            )
        out[c.name] = rows
    return out


def _auc(pos: list[float], neg: list[float]) -> float | None:
    if not pos or not neg:
        return None
    p, n = np.array(pos)[:, None], np.array(neg)[None, :]
    return round(float(((p > n) + 0.5 * (p == n)).mean()), 3)


def score(rows: list[dict], w: np.ndarray, b: float = 0.0, prob: bool = False) -> dict:
    """Selection accuracy and abstention AUC of the linear scorer (w, b) on `rows`."""
    top_right, answerable, best_pos, best_neg = 0, 0, [], []
    for r in rows:
        if not len(r["x"]):
            (best_pos if r["answerable"] else best_neg).append(-1e9)
            continue
        s = r["x"] @ w + b
        if prob:
            s = 1 / (1 + np.exp(-s))
        best = float(s.max())
        if r["answerable"]:
            answerable += 1
            top_right += int(r["y"][int(np.argmax(s))] == 1)
            best_pos.append(best)
        else:
            best_neg.append(best)
    return {
        "top1": round(100 * top_right / max(1, answerable), 1),
        "abstention_auc": _auc(best_pos, best_neg),
    }


def fit(rows: list[dict]) -> tuple[np.ndarray, float]:
    from sklearn.linear_model import LogisticRegression

    x = np.concatenate([r["x"] for r in rows if r["answerable"] and len(r["x"])])
    y = np.concatenate([r["y"] for r in rows if r["answerable"] and len(r["x"])])
    model = LogisticRegression(C=1.0, class_weight="balanced", max_iter=1000).fit(x, y)
    return model.coef_[0], float(model.intercept_[0])


def main(argv: list[str] | None = None) -> int:
    from .corpora import all_corpora

    p = argparse.ArgumentParser(
        prog="python -m bench.fit_scorer", description=__doc__.splitlines()[0]
    )
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    corpora = all_corpora()
    data = collect(corpora, Settings.load())
    trainable = [c.name for c in corpora if not c.sealed]
    hand = np.array(WEIGHTS)
    table = {}
    for c in corpora:
        train = [r for name in trainable if name != c.name for r in data[name]]
        w, b = fit(train)
        table[c.name] = {
            "held_out": True,
            "sealed": c.sealed,
            "fitted_on": [n for n in trainable if n != c.name],
            "hand": score(data[c.name], hand),
            "fitted": score(data[c.name], w, b, prob=True),
            "weights": dict(zip(SIGNALS, np.round(w, 3).tolist(), strict=True)),
        }
    if args.json:
        print(json.dumps(table, indent=1))
        return 0
    print(f"{'corpus':<22}{'top-1 hand':>11}{'top-1 fitted':>14}{'AUC hand':>10}{'AUC fitted':>12}")
    for name, t in table.items():
        print(
            f"{name + (' (sealed)' if t['sealed'] else ''):<22}{t['hand']['top1']:>11}"
            f"{t['fitted']['top1']:>14}{t['hand']['abstention_auc'] or '-':>10}"
            f"{t['fitted']['abstention_auc'] or '-':>12}"
        )
    print("each row: fitted on the other unsealed corpora, scored on this one", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
