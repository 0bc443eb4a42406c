"""Fit the engine's confidence (`rag/confidence.json`) on the fitting corpora, never on the
held-out ones: collect the reader's verdicts once, then fit, leaving one corpus out in turn.

    python -m bench.fit_confidence collect     # the reader on every fitting question (slow)
    python -m bench.fit_confidence fit         # choose and fit; writes rag/confidence.json

`collect` runs the engine's own retrieval and rules and asks the reader about the best-ranked
sentences of each question (`--candidates`, no early stop), recording for each sentence the
reader's P(yes), its rule score, and whether quoting it answers the question (its facts are in
the quote). `fit` then chooses, by leave-one-corpus-out, how many sentences the reader judges,
when it stops early, how its verdict and the rule score combine to pick the quote, and the
abstention threshold; and fits a logistic regression (scikit-learn) from the signals to
P(the quoted answer is right). A fitting corpus is one whose corpus.json says "fitted": true.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import sys
import time
from itertools import product
from pathlib import Path

import numpy as np

from rag import confidence as conf

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / "bench-results" / "confidence"
COUNTS = (1, 2, 3, 4, 5, 6)
STOPS = (0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
RULE_WEIGHTS = (0.0, 0.5, 1.0, 2.0, 4.0, 8.0)
# the price of time: each sentence judged per question (about 0.55 s on 2 cores with AVX-512,
# 0.75 s with AVX2 alone) must buy half a point of right outcomes to be worth judging, and no
# more than MAX_JUDGED are judged on average: the verdict's budget is 3 s on an AVX2 laptop
PER_JUDGED = 0.005
MAX_JUDGED = 3.0


def _key(reader_name: str) -> str:
    from rag import reader

    prompt = hashlib.sha1(reader.SYSTEM.encode()).hexdigest()[:8]
    return f"{Path(reader_name).stem}-{prompt}"


def collect(args, settings) -> int:
    from rag.compose import quoted
    from rag.embed import load_embedder
    from rag.loader import make_models
    from rag.pipeline import Pipeline
    from rag.query import check_question, read

    from .corpora import all_corpora, corpus
    from .evaluate import corpus_index, corpus_items

    chosen = [corpus(n) for n in args.corpus] if args.corpus else [c for c in all_corpora()
                                                                 if c.fitted]
    embedder = load_embedder(settings.embed_model, settings.embed_backend)
    _, reader = make_models(settings, with_llm=False)
    if reader is None:
        print("error: no reader to collect from: install it (`make models`) or pass --reader",
              file=sys.stderr)
        return 1
    out_dir = CACHE / _key(reader.name)
    out_dir.mkdir(parents=True, exist_ok=True)
    pipeline = None
    for c in chosen:
        dest = out_dir / f"{c.name}.jsonl"
        if dest.exists() and not args.force:
            print(f"{c.name}: already collected in {dest}", file=sys.stderr)
            continue
        index = corpus_index(c, settings, embedder)
        if pipeline is None:
            pipeline = Pipeline(settings, index, embedder)
        else:
            pipeline.set_index(index)
        retriever = pipeline.retriever
        rows = []
        for item in corpus_items(c):
            query = read(check_question(item.question, settings), item.history)
            found = retriever.find(query, settings.top_k, settings.evidence_k)
            rules = pipeline.rules(query, found, retriever, settings)
            row = {"corpus": c.name, "id": item.id, "answerable": item.answerable,
                   "hard": rules.coverage is None, "cosine": rules.cosine,
                   "coverage": "" if rules.coverage is None or rules.coverage.covered
                   else rules.coverage.kind,
                   "nowhere": bool(rules.coverage and rules.coverage.missing)}

            def right(text: str, item=item) -> bool:
                return item.answerable and all(
                    any(a.lower() in text.lower() for a in alts) for alts in item.facts)

            row["rules_right"] = right(pipeline.quote(query, found).text) if found.ranked else False
            row["rules_abstained"] = rules.abstention is not None
            if not row["hard"]:
                # what the engine shows the reader, and quotes
                asked = pipeline.for_reader(query, found, retriever, args.candidates)
                t = time.perf_counter()
                p = reader.judge(asked.question, asked.shown)
                row["ms"] = (time.perf_counter() - t) * 1000
                row["p"] = p
                row["rule"] = [e.score for e in asked.candidates]
                row["right"] = [right(quoted(pipeline.shown(query, unit, found)).text)
                                for unit in asked.units]
            rows.append(row)
            print(f"{c.name} {item.id} {row.get('p')}", file=sys.stderr, flush=True)
        dest.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return 0


# -- fitting ----------------------------------------------------------------------------
def _rows(reader_key: str) -> list[dict]:
    from .corpora import all_corpora

    folder = CACHE / reader_key
    rows = []
    for c in all_corpora():
        path = folder / f"{c.name}.jsonl"
        if c.fitted and path.exists():
            rows += [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x]
    return rows


def _simulate(row: dict, n: int, stop: float, weight: float, model_reader: bool):
    """(Signals, label) for one question under a configuration; None for a hard abstention."""
    if row["hard"]:
        return None
    if model_reader:
        p = list(row["p"][:n])
        for i, x in enumerate(p):
            if x >= stop:
                p = p[: i + 1]
                break
        rule = tuple(row["rule"][: len(p)])
        tmp = conf.Model((), (), (), (), 0.0, 0.0, rule_weight=weight)
        chosen = tmp.choose(tuple(p), rule)
        label = bool(row["right"][chosen])
        s = conf.Signals(tuple(p), rule, chosen, row["cosine"], row["coverage"], row["nowhere"])
    else:
        rule = tuple(row["rule"][:1]) if row.get("rule") else (0.0,)
        label = bool(row["rules_right"])
        s = conf.Signals((), rule, 0, row["cosine"], row["coverage"], row["nowhere"])
    return s, label


def _design(rows, n, stop, weight, reader, label="right"):
    """Features and labels: "right" (the quote answers the question) or "unanswerable" (the
    documents do not answer it)."""
    xs, ys, groups, keep = [], [], [], []
    for r in rows:
        sim = _simulate(r, n, stop, weight, reader)
        if sim is None:
            continue
        s, y = sim
        if label == "unanswerable":
            y = not r["answerable"]
        f = conf.features(s, reader)
        xs.append([f[k] for k in f])
        ys.append(int(y))
        groups.append(r["corpus"])
        keep.append(r)
    names = list(conf.features(conf.Signals((0.5,), (0.0,), 0, 0.0, ""), reader))
    return names, np.array(xs, float), np.array(ys), np.array(groups), keep


def _fit(x, y):
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(x)
    model = LogisticRegression(C=1.0, max_iter=1000).fit(scaler.transform(x), y)
    return scaler, model


def _loco(x, y, groups):
    """Each question's confidence from a fit that never saw its corpus."""
    out = np.zeros(len(y))
    for g in sorted(set(groups)):
        test = groups == g
        if len(set(y[~test])) < 2:
            out[test] = y[~test].mean()
            continue
        scaler, model = _fit(x[~test], y[~test])
        out[test] = model.predict_proba(scaler.transform(x[test]))[:, 1]
    return out


def _outcomes(confidence, y, rows, threshold, all_rows) -> dict:
    """Right outcomes over every question: a given answer that is right, or an abstention on
    a question the documents do not answer; hard abstentions count as abstentions."""
    answered = confidence >= threshold
    right = sum(int(a and yy) or int(not a and not r["answerable"])
                for a, yy, r in zip(answered, y, rows, strict=True))
    hard = [r for r in all_rows if r["hard"]]
    right += sum(not r["answerable"] for r in hard)
    n = len(rows) + len(hard)
    ans = [r for r in list(rows) + hard if r["answerable"]]
    unans = [r for r in list(rows) + hard if not r["answerable"]]
    acc = sum(int(a and yy) for a, yy in zip(answered, y, strict=True)) / max(1, len(ans))
    abst = [not a for a in answered] + [True] * len(hard)
    flags = [r["answerable"] for r in list(rows) + hard]
    abst_right = sum(1 for a, f in zip(abst, flags, strict=True) if a and not f)
    return {"right": right / n, "accuracy": acc,
            "abstention_recall": abst_right / max(1, len(unans)),
            "abstention_precision": abst_right / max(1, sum(abst)),
            "precision_when_answering": sum(int(a and yy) for a, yy in zip(
                answered, y, strict=True)) / max(1, int(answered.sum()))}


def _best_threshold(confidence, y, rows, all_rows) -> float:
    grid = np.round(np.arange(0.05, 0.951, 0.01), 2)
    scores = [_outcomes(confidence, y, rows, t, all_rows)["right"] for t in grid]
    return float(grid[int(np.argmax(scores))])


def fit(args) -> int:
    from sklearn.metrics import roc_auc_score

    key = args.key or _latest_key()
    rows = _rows(key)
    if not rows:
        print(f"error: nothing collected in {CACHE / key}: run `python -m bench.fit_confidence "
              "collect` first", file=sys.stderr)
        return 1
    corpora = sorted({r["corpus"] for r in rows})
    results = []
    for n, stop, weight in product(COUNTS, STOPS, RULE_WEIGHTS):
        names, x, y, groups, kept = _design(rows, n, stop, weight, True)
        predicted = _loco(x, y, groups)
        t = _best_threshold(predicted, y, kept, rows)
        score = _outcomes(predicted, y, kept, t, rows)
        judged = np.mean([len(_simulate(r, n, stop, weight, True)[0].p) for r in kept])
        if judged > MAX_JUDGED:
            continue
        results.append((score["right"] - PER_JUDGED * judged, n, stop, weight, t, score, judged))
    results.sort(key=lambda r: -r[0])
    _, n, stop, weight, _, score, judged = results[0]
    print(f"chosen: judge {n} candidates, stop at P {stop}, rule weight {weight}: "
          f"{score['right']:.3f} right outcomes, {judged:.2f} judged per question", file=sys.stderr)
    models = {}
    for name, reader, label in (("reader", True, "right"), ("rules", False, "right"),
                                ("reader_unanswerable", True, "unanswerable"),
                                ("rules_unanswerable", False, "unanswerable")):
        names, x, y, groups, kept = _design(rows, n, stop, weight, reader, label)
        predicted = _loco(x, y, groups)
        threshold = _best_threshold(predicted, y, kept, rows) if name == "reader" else 0.0
        per_corpus = {}
        for g in corpora:
            m = groups == g
            if not m.any():
                continue
            sub = [r for r, k in zip(kept, m, strict=True) if k]
            per_corpus[g] = {k: round(v, 3) for k, v in _outcomes(
                predicted[m], y[m], sub, threshold, [r for r in rows if r["corpus"] == g]).items()
                } if label == "right" else {}
            if len(set(y[m])) > 1:
                per_corpus[g]["auc"] = round(float(roc_auc_score(y[m], predicted[m])), 3)
        scaler, model = _fit(x, y)
        models[name] = {
            "features": names, "mean": scaler.mean_.round(6).tolist(),
            "scale": scaler.scale_.round(6).tolist(), "coef": model.coef_[0].round(6).tolist(),
            "intercept": round(float(model.intercept_[0]), 6), "threshold": threshold,
            "label": label,
            "candidates": n if reader else 0, "stop_at": stop if reader else 1.0,
            "rule_weight": weight if reader else 0.0,
            "fitted": {"leave_one_corpus_out": per_corpus,
                       "auc": round(float(roc_auc_score(y, predicted)), 3)},
        }
    out = {
        "what": "rag.confidence: P(the quoted answer is right), a logistic regression over the "
                "engine's signals; refit with `python -m bench.fit_confidence fit`",
        "reader": key,
        "fitted_on": {c: sum(r["corpus"] == c for r in rows) for c in corpora},
        "date": datetime.date.today().isoformat(),
        "objective": "right outcomes (answers that are right plus abstentions on questions the "
                     f"documents do not answer, leaving one corpus out in turn) less {PER_JUDGED} "
                     f"per sentence judged per question, at most {MAX_JUDGED} judged on average",
        "top_configurations": [
            {"candidates": r[1], "stop_at": r[2], "rule_weight": r[3], "threshold": r[4],
             "right": round(r[5]["right"], 3), "judged": round(r[6], 2)} for r in results[:5]],
        "models": models,
    }
    Path(args.out).write_text(json.dumps(out, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {args.out}", file=sys.stderr)
    for name, m in models.items():
        print(name, json.dumps(m["fitted"]), file=sys.stderr)
    return 0


def _latest_key() -> str:
    folders = sorted(CACHE.glob("*/"), key=lambda p: p.stat().st_mtime)
    return folders[-1].name if folders else ""


def main(argv: list[str] | None = None) -> int:
    from rag.settings import Settings

    p = argparse.ArgumentParser(prog="python -m bench.fit_confidence",
                                description=__doc__.splitlines()[0])
    p.add_argument("action", choices=["collect", "fit"])
    p.add_argument("--corpus", action="append", help="collect only these (default: the fitting corpora)")
    p.add_argument("--reader", help="the reader to collect from (default: the engine's)")
    p.add_argument("--candidates", type=int, default=max(COUNTS),
                   help="sentences judged per question")
    p.add_argument("--force", action="store_true", help="collect again what was collected")
    p.add_argument("--key", help="fit on this collection (a folder in bench-results/confidence)")
    p.add_argument("--out", default=str(conf.PATH))
    args = p.parse_args(argv)
    if args.action == "collect":
        return collect(args, Settings.load(mode="extractive", reader=args.reader))
    return fit(args)


if __name__ == "__main__":
    raise SystemExit(main())
