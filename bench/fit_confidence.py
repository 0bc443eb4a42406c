"""Fit the engine's confidence (`rag/answering/confidence.json`) on the fitting corpora, never on the
held-out ones: collect the reader's verdicts once, then fit, leaving one genre out in turn.

    python -m bench.fit_confidence collect     # the reader on every fitting question (slow)
    python -m bench.fit_confidence fit         # choose and fit; writes rag/answering/confidence.json

`collect` runs the engine's own retrieval and rules and asks the reader about the best-ranked
sentences of each question (`--candidates`, no early stop), recording for each sentence the
reader's P(yes), its rule score, and whether quoting it answers the question (its facts are in
the quote). `fit` then chooses how many sentences the reader judges,
when it stops early, how its verdict and the rule score combine to pick the quote, and the
cuts; and fits logistic regressions (scikit-learn) from the signals to P(the quoted answer is
right) and P(the documents do not answer). A fitting corpus is one whose corpus.json says
"fitted": true.

Every choice is judged leaving one *genre* out in turn (corpus.json's "genre"): a confidence
fitted on manuals must hold on news it never saw. The file also keeps, per genre, the models
fitted without it, so that `rag eval` reports each fitting corpus with a model that never saw
its genre.
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
from typing import NamedTuple

import numpy as np

from rag.answering import confidence as conf
from rag.llm.reader import BATCH

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / "bench-results" / "confidence"
COUNTS = (1, 2, 3, 4, 5, 6, 7, 8, 9, 10)
STOPS = (0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
RULE_WEIGHTS = (0.0, 0.5, 1.0, 2.0, 4.0, 8.0)
# the price of time: a verdict's prompt tokens are its latency (on 2 cores a 1.5B model reads
# about 60 a second with AVX2 alone): half a point of right outcomes must buy every 50 tokens
# read on average, and at the median a verdict reads at most MAX_TOKENS_P50 (2 s at that rate)
PER_TOKEN = 0.0001
MAX_TOKENS_P50 = 120
SHOWN_WEIGHT = 0.5  # a right passage shown (answer or not sure) is worth half a right outcome


def _key(reader_name: str) -> str:
    from rag.llm import reader

    prompt = hashlib.sha1(reader.SYSTEM.encode()).hexdigest()[:8]
    return f"{Path(reader_name).stem}-{prompt}"


def collect(args, settings) -> int:
    from rag.answering.compose import quoted
    from rag.answering.pipeline import Pipeline
    from rag.answering.query import check_question, read
    from rag.indexing.embed import load_embedder
    from rag.loader import make_models

    from .corpora import all_corpora, corpus
    from .evaluate import _overlaps, corpus_index, corpus_items

    chosen = (
        [corpus(n) for n in args.corpus] if args.corpus else [c for c in all_corpora() if c.fitted]
    )
    windows = [int(w) for w in args.windows.split(",")]
    embedder = load_embedder(settings.embed_model, settings.embed_backend)
    _, reader = make_models(settings, with_llm=False)
    if reader is None:
        print(
            "error: no reader to collect from: install it (`make models`) or pass --reader",
            file=sys.stderr,
        )
        return 1
    out_dir = CACHE / _key(reader.name)
    out_dir.mkdir(parents=True, exist_ok=True)
    pipeline = None
    for c in chosen:
        dest = out_dir / f"{c.name}.jsonl"
        before = {}
        if dest.exists() and args.rules_only:
            before = {r["id"]: r for r in map(json.loads, dest.read_text().splitlines())}
        elif dest.exists() and not args.force:
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
            row = {
                "corpus": c.name,
                "id": item.id,
                "answerable": item.answerable,
                "hard": rules.coverage is None,
                "cosine": rules.cosine,
                "coverage": ""
                if rules.coverage is None or rules.coverage.covered
                else rules.coverage.kind,
                "nowhere": bool(rules.coverage and rules.coverage.missing),
            }

            def right(text: str, item=item) -> bool:
                return item.answerable and all(
                    any(a.lower() in text.lower() for a in alts) for alts in item.facts
                )

            row["rules_right"] = right(pipeline.quote(query, found).text) if found.ranked else False
            row["rules_abstained"] = rules.abstention is not None
            if before:  # the rules' signals anew, the reader's verdicts kept where they hold
                old = before[item.id]
                ranked = [e.score for e in found.ranked[: args.candidates]]
                kept = (
                    row["hard"]
                    or not old["hard"]
                    and (len(old["rule"]) == len(ranked) and np.allclose(old["rule"], ranked))
                )
                if kept:
                    rows.append({**old, **row})
                    continue
                # the ranking changed (or the rules now let the reader judge): ask it again
                print(
                    f"{c.name} {item.id}: the ranking changed; asking the reader again",
                    file=sys.stderr,
                )
            if not row["hard"]:
                # what the engine shows the reader, and quotes: every window, no early stop
                asked = pipeline.for_reader(query, found, retriever, args.candidates)
                row["rule"] = [e.score for e in asked.candidates]
                row["right"] = [
                    right(quoted(pipeline.shown(query, unit, found)).text) for unit in asked.units
                ]
                row["gold"] = [
                    any(_overlaps(e.source, e.start, e.end, item.gold) for e in unit)
                    for unit in asked.units
                ]
                row["p"], row["own_tokens"], row["ms"] = {}, {}, {}
                for w in windows:
                    t = time.perf_counter()
                    row["p"][w] = reader.judge(asked.question, asked.shown, 1.0, w)
                    row["ms"][w] = (time.perf_counter() - t) * 1000
                    if hasattr(reader, "tokens"):
                        prompts = [reader.tokens(asked.question, x, w) for x in asked.shown]
                        shared = _shared(prompts)
                        row["own_tokens"][w] = [len(x) - shared for x in prompts]
                        row["question_tokens"] = shared - _system_tokens(reader)
            rows.append(row)
            print(
                f"{c.name} {item.id} {row.get('p', {}).get(windows[0])}",
                file=sys.stderr,
                flush=True,
            )
        dest.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return 0


def _shared(prompts: list[list[int]]) -> int:
    from rag.llm.reader import _common

    return (
        min(_common(prompts), min(len(x) for x in prompts) - 1)
        if len(prompts) > 1
        else len(prompts[0]) - 1
    )


def _system_tokens(reader) -> int:
    """The prompt tokens every question shares (the system prompt): evaluated once a process."""
    from rag.llm.reader import Candidate, _common

    return _common([reader.tokens(q, Candidate("x")) for q in ("Who?", "What is it?")])


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


class Config(NamedTuple):
    """How the reader is used: how many candidates, when it stops, how its verdict and the
    rule score pick the quote, and how much of each candidate it is shown."""

    candidates: int
    stop_at: float
    rule_weight: float
    window: int


def judged_count(p: list[float], n: int, stop: float, batch: int = BATCH) -> int:
    """How many of the first `n` candidates the reader judges: the first alone, then groups
    of `batch`, stopping after a group that holds one at or above `stop` (rag.llm.reader)."""
    p = p[:n]
    if not p:
        return 0
    if p[0] >= stop:
        return 1
    for end in range(1 + batch, len(p) + batch, batch):
        if any(x >= stop for x in p[1:end]) or end >= len(p):
            return min(end, len(p))
    return len(p)


def _simulate(row: dict, cfg: Config | None):
    """(Signals, label, tokens) for one question under a configuration (None: the rules
    alone); None for a question with nothing to judge."""
    if row["hard"]:
        return None
    if cfg is not None:
        w = str(cfg.window)
        k = judged_count(row["p"][w], cfg.candidates, cfg.stop_at)
        p = tuple(row["p"][w][:k])
        rule = tuple(row["rule"][:k])
        tmp = conf.Model((), (), (), (), 0.0, 0.0, rule_weight=cfg.rule_weight)
        chosen = tmp.choose(p, rule)
        label = bool(row["right"][chosen])
        tokens = row["question_tokens"] + sum(row["own_tokens"][w][:k])
        s = conf.Signals(
            p, rule, chosen, row["cosine"], row["coverage"], row["nowhere"], _runner_up(row)
        )
        return s, label, tokens, any(row["right"][:k])
    rule = tuple(row["rule"][:1]) if row.get("rule") else (0.0,)
    s = conf.Signals((), rule, 0, row["cosine"], row["coverage"], row["nowhere"], _runner_up(row))
    return s, bool(row["rules_right"]), 0, bool(row["rules_right"])


def _runner_up(row: dict) -> float:
    rule = row.get("rule") or []
    return rule[1] if len(rule) > 1 else 0.0


# which of the signals a model reads (rag.answering.confidence.features): the raw scores, whose
# scale depends on the collection; the same signals made free of it (ratios to the best score
# found, no cosine); and those with the agreement of the reader's pick with the rules' best
READER_ONLY = ("reader_logit", "reader_other", "chose_top", "judged", "reader_agrees")
COVERAGE = ("covered", "absent", "nowhere", "unrelated", "no_answer_kind")
FEATURE_SETS = {
    "scores": ("reader_logit", "reader_other", "chose_top", "judged", "rule_score", "rule_top",
               "rule_margin", "cosine") + COVERAGE,
    "normalised": ("reader_logit", "reader_other", "chose_top", "judged", "rule_ratio",
                   "margin_ratio") + COVERAGE,
    "normalised+agreement": ("reader_logit", "reader_other", "chose_top", "judged",
                             "reader_agrees", "rule_ratio", "margin_ratio") + COVERAGE,
}  # fmt: skip


class Design(NamedTuple):
    names: list[str]
    x: np.ndarray
    right: np.ndarray  # the quoted (or shown) passage answers the question
    absent: np.ndarray  # the documents do not answer the question
    groups: np.ndarray  # the genre of each row: fits are judged leaving one genre out
    tokens: np.ndarray  # prompt tokens the verdict read
    judged_right: np.ndarray  # a passage the reader judged holds the answer
    rows: list[dict]  # the questions with something to judge
    hard: list[dict]  # the questions with nothing to judge: refused by the rules


def _genres() -> dict[str, str]:
    from .corpora import all_corpora

    return {c.name: c.genre for c in all_corpora()}


def _design(rows: list[dict], cfg: Config | None, names: tuple[str, ...] | None = None) -> Design:
    names = names or FEATURE_SETS["scores"]
    if cfg is None:
        names = tuple(n for n in names if n not in READER_ONLY)
    xs, right, absent, groups, tokens, judged, kept = [], [], [], [], [], [], []
    for r in rows:
        sim = _simulate(r, cfg)
        if sim is None:
            continue
        s, y, t, j = sim
        judged.append(j)
        f = conf.features(s, cfg is not None)
        xs.append([f[k] for k in names])
        right.append(int(y))
        absent.append(int(not r["answerable"]))
        groups.append(r["genre"])
        tokens.append(t)
        kept.append(r)
    return Design(
        list(names),
        np.array(xs, float).reshape(len(xs), len(names)),
        np.array(right),
        np.array(absent),
        np.array(groups),
        np.array(tokens, float),
        np.array(judged, bool),
        kept,
        [r for r in rows if r["hard"]],
    )


def _fit(x, y):
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(x)
    model = LogisticRegression(C=1.0, max_iter=1000).fit(scaler.transform(x), y)
    return scaler, model


def _logo(x, y, groups):
    """Each question's probability from a fit that never saw its genre."""
    out = np.zeros(len(y))
    for g in sorted(set(groups)):
        test = groups == g
        if len(set(y[~test])) < 2:
            out[test] = y[~test].mean()
            continue
        scaler, model = _fit(x[~test], y[~test])
        out[test] = model.predict_proba(scaler.transform(x[test]))[:, 1]
    return out


# what the cuts promise on a genre they were not fitted on: stated answers right at least
# MIN_STATED_RIGHT of the time, refusals right at least MIN_REFUSALS_RIGHT, on every genre
MIN_STATED_RIGHT = 0.90
MIN_REFUSALS_RIGHT = 0.85
CONFIDENT = 0.6  # the answer cut is at least this: an answer is never labelled less sure
NEVER = 1.01  # a cut no probability reaches
VIOLATION = 4.0  # what a point of broken promise costs, against a point of right outcomes


def outcomes(right_p, absent_p, d: Design, t_answer: float, t_absent: float, mask=None) -> dict:
    """The three outcomes at the cuts, and how they do: `right` (answers that are right plus
    refusals of questions the documents do not answer, per question), `accuracy` (stated and
    right, of the answerable), `stated_right` (of the stated answers), `unanswerable_stated`,
    `right_shown`, refusal precision and recall, and the expected calibration error of the
    confidence each outcome carries. Questions with nothing to judge are refusals
    (confidence: their base rate)."""
    m = np.ones(len(d.right), bool) if mask is None else mask
    hard = [r for r in d.hard if mask is None or r["genre"] in set(d.groups[m])]
    answer = right_p[m] >= t_answer
    refuse = ~answer & (absent_p[m] >= t_absent)
    unsure = ~answer & ~refuse
    right, absent = d.right[m].astype(bool), d.absent[m].astype(bool)
    n_hard_abs = sum(not r["answerable"] for r in hard)
    n = int(m.sum()) + len(hard)
    answerable = int((~absent).sum()) + len(hard) - n_hard_abs
    unanswerable = int(absent.sum()) + n_hard_abs
    refusals = int(refuse.sum()) + len(hard)
    refused_right = int((refuse & absent).sum()) + n_hard_abs
    conf_shown = np.where(refuse, absent_p[m], right_p[m])
    label = np.where(refuse, absent, right)
    hard_rate = (n_hard_abs / len(hard)) if hard else 0.0
    return {
        "right": (int((answer & right).sum()) + refused_right) / max(1, n),
        "accuracy": int((answer & right).sum()) / max(1, answerable),
        "stated_right": int((answer & right).sum()) / answer.sum() if answer.any() else 1.0,
        "unanswerable_stated": int((answer & absent).sum()) / max(1, unanswerable),
        "right_shown": int(((answer | unsure) & right).sum()) / max(1, answerable),
        "reader_recall": int((d.judged_right[m] & ~absent).sum()) / max(1, answerable),
        "refusal_precision": refused_right / refusals if refusals else 1.0,  # none wrong
        "refusal_recall": refused_right / max(1, unanswerable),
        "answered": int(answer.sum()) / max(1, n),
        "not_sure": int(unsure.sum()) / max(1, n),
        "calibration_error": ece(
            np.concatenate([conf_shown, np.full(len(hard), hard_rate)]),
            np.concatenate([label, [not r["answerable"] for r in hard]]),
        ),
    }


def ece(confidence, label, bins: int = 10) -> float:
    """Expected calibration error: over equal-width bins of the confidence, the gap between
    mean confidence and the share that is right, weighted by the bin's share of questions."""
    confidence, label = np.asarray(confidence, float), np.asarray(label, float)
    if not len(confidence):
        return 0.0
    which = np.minimum((confidence * bins).astype(int), bins - 1)
    return float(
        sum(
            abs(confidence[which == b].mean() - label[which == b].mean()) * (which == b).sum()
            for b in range(bins)
            if (which == b).any()
        )
        / len(confidence)
    )


ANSWER_CUTS = np.append(np.round(np.arange(CONFIDENT, 0.991, 0.01), 2), NEVER)
REFUSE_CUTS = np.append(np.round(np.arange(0.30, 0.991, 0.01), 2), NEVER)


def cut_grid(right_p, absent_p, d: Design) -> dict[str, np.ndarray]:
    """Every pair of cuts at once (ANSWER_CUTS x REFUSE_CUTS): per genre, the macro-average of
    right outcomes plus SHOWN_WEIGHT x right passages shown, and the promises' worst breach on
    any genre (stated answers right >= MIN_STATED_RIGHT, refusals right >= MIN_REFUSALS_RIGHT;
    a genre with fewer than 5 of either is not judged on it)."""
    genres = sorted(set(d.groups) | {r["genre"] for r in d.hard})
    onehot = np.array([[g == x for g in genres] for x in d.groups], float).reshape(-1, len(genres))
    hard = np.array([[sum(r["genre"] == g for r in d.hard) for g in genres],
                     [sum(r["genre"] == g and not r["answerable"] for r in d.hard)
                      for g in genres]], float)  # fmt: skip
    right, absent = d.right.astype(float), d.absent.astype(float)
    answer = (right_p[None, :] >= ANSWER_CUTS[:, None]).astype(float)  # A x N
    over = (absent_p[None, :] >= REFUSE_CUTS[:, None]).astype(float)  # B x N
    refuse = (1 - answer)[:, None, :] * over[None, :, :]  # A x B x N

    def per(x):  # sums per genre
        return x @ onehot

    n = onehot.sum(0) + hard[0]
    answerable = per(1 - absent) + hard[0] - hard[1]
    stated = per(answer)[:, None, :]
    stated_right = per(answer * right)[:, None, :]
    refusals = per(refuse) + hard[0]
    refused_right = per(refuse * absent) + hard[1]
    shown_right = per(right)[None, None, :] - per(refuse * right)  # answers and not sure
    score = (stated_right + refused_right) / np.maximum(n, 1) + SHOWN_WEIGHT * shown_right / (
        np.maximum(answerable, 1)
    )
    precision = np.where(stated >= 5, stated_right / np.maximum(stated, 1), 1.0)
    refusal_precision = np.where(refusals >= 5, refused_right / np.maximum(refusals, 1), 1.0)
    breach = np.maximum(MIN_STATED_RIGHT - precision, 0) + np.maximum(
        MIN_REFUSALS_RIGHT - refusal_precision, 0
    )
    return {"score": score.mean(-1), "breach": breach.max(-1)}


def choose_cuts(right_p, absent_p, d: Design) -> tuple[float, float, dict, float]:
    """The cuts that give the most right outcomes, macro over genres, less VIOLATION x the
    worst breach of a promise on any genre; and the outcomes there, and that objective."""
    g = cut_grid(right_p, absent_p, d)
    objective = g["score"] - VIOLATION * g["breach"]
    a, b = np.unravel_index(int(np.argmax(objective)), objective.shape)
    ta, tb = float(ANSWER_CUTS[a]), float(REFUSE_CUTS[b])
    return ta, tb, outcomes(right_p, absent_p, d, ta, tb), float(objective[a, b])


def _per_genre(right_p, absent_p, d: Design, ta: float, tb: float) -> dict:
    from sklearn.metrics import roc_auc_score

    out = {}
    for g in sorted(set(d.groups)):
        m = d.groups == g
        o = outcomes(right_p, absent_p, d, ta, tb, m)
        if len(set(d.right[m])) > 1:
            o["auc"] = float(roc_auc_score(d.right[m], right_p[m]))
        if len(set(d.absent[m])) > 1:
            o["auc_absent"] = float(roc_auc_score(d.absent[m], absent_p[m]))
        out[g] = {k: round(v, 3) for k, v in o.items()}
    return out


def _model(d: Design, y, label: str, threshold: float, c: Config | None, fitted: dict) -> dict:
    scaler, model = _fit(d.x, y)
    return {
        "features": d.names,
        "mean": scaler.mean_.round(6).tolist(),
        "scale": scaler.scale_.round(6).tolist(),
        "coef": model.coef_[0].round(6).tolist(),
        "intercept": round(float(model.intercept_[0]), 6),
        "threshold": threshold,
        "label": label,
        "candidates": c.candidates if c else 0,
        "stop_at": c.stop_at if c else 1.0,
        "rule_weight": c.rule_weight if c else 0.0,
        "window": c.window if c else 300,
        "fitted": fitted,
    }


def _hard_model(hard: list[dict]) -> dict:
    # with no such question to learn from, even odds: nothing is known either way
    rate = sum(not r["answerable"] for r in hard) / len(hard) if hard else 0.5
    rate = min(max(rate, 0.01), 0.99)
    return {
        "features": [],
        "mean": [],
        "scale": [],
        "coef": [],
        "intercept": round(float(np.log(rate / (1 - rate))), 6),
        "threshold": 0.0,
        "label": "unanswerable",
        "fitted": {"questions": len(hard), "unanswerable": round(rate, 3)},
    }


def _models(rows: list[dict], cfg: Config, names: tuple[str, ...]) -> dict:
    """The reader's and the rules' models, fitted on `rows`, their cuts chosen leaving one
    genre out in turn, with how they did on each genre left out."""
    from sklearn.metrics import roc_auc_score

    models = {}
    for kind, c in (("reader", cfg), ("rules", None)):
        d = _design(rows, c, names)
        right_p, absent_p = _logo(d.x, d.right, d.groups), _logo(d.x, d.absent, d.groups)
        ta, tb, overall, _ = choose_cuts(right_p, absent_p, d)
        fitted = {
            "leave_one_genre_out": _per_genre(right_p, absent_p, d, ta, tb),
            "overall": {k: round(v, 3) for k, v in overall.items()},
            "auc": round(float(roc_auc_score(d.right, right_p)), 3),
            "auc_absent": round(float(roc_auc_score(d.absent, absent_p)), 3),
        }
        if c is not None:
            fitted["tokens_p50"] = float(np.median(d.tokens))
            fitted["tokens_mean"] = round(float(d.tokens.mean()), 1)
        models[kind] = _model(d, d.right, "right", ta, c, fitted)
        models[f"{kind}_unanswerable"] = _model(d, d.absent, "unanswerable", tb, c, fitted)
    models["hard_unanswerable"] = _hard_model([r for r in rows if r["hard"]])
    return models


def fit(args) -> int:
    key = args.key or _latest_key()
    genre = _genres()
    rows = [{**r, "genre": genre[r["corpus"]]} for r in _rows(key)]
    if not rows:
        print(
            f"error: nothing collected in {CACHE / key}: run `python -m bench.fit_confidence "
            "collect` first",
            file=sys.stderr,
        )
        return 1
    windows = sorted({int(w) for r in rows if not r["hard"] for w in r["p"]})
    collected = min(len(r["p"][str(windows[0])]) for r in rows if not r["hard"] and r["p"])
    counts = [n for n in COUNTS if n <= max(collected, 1)]
    results = []
    for (n, stop, weight, window), (fs, names) in product(
        product(counts, STOPS, RULE_WEIGHTS, windows), FEATURE_SETS.items()
    ):
        cfg = Config(n, stop, weight, window)
        d = _design(rows, cfg, names)
        tokens = float(np.median(d.tokens))
        if tokens > MAX_TOKENS_P50 * window / 180:
            continue
        right_p = _logo(d.x, d.right, d.groups)
        absent_p = _logo(d.x, d.absent, d.groups)
        ta, tb, o, objective = choose_cuts(right_p, absent_p, d)
        score = objective - PER_TOKEN * float(d.tokens.mean())
        results.append((score, cfg, fs, ta, tb, o, tokens, float(d.tokens.mean())))
        print(
            f"{cfg} {fs}: {score:.3f} {json.dumps({k: round(v, 3) for k, v in o.items()})} "
            f"tokens p50 {tokens:.0f}",
            file=sys.stderr,
            flush=True,
        )
    results.sort(key=lambda r: r[0], reverse=True)
    _, cfg, fs, *_ = results[0]
    names = FEATURE_SETS[fs]
    print(f"chosen: {cfg} {fs}", file=sys.stderr)
    models = _models(rows, cfg, names)
    # for `rag eval`: each genre's figures from models that never saw it, cuts and all
    without = {g: _models([r for r in rows if r["genre"] != g], cfg, names)
               for g in sorted({r["genre"] for r in rows})}  # fmt: skip
    path = Path(args.out)
    out = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    out.update(
        {
            "what": "rag.answering.confidence: P(the quoted answer is right) and P(the documents "
            "do not answer), logistic regressions over the engine's signals, and the cuts "
            "between answer, not sure and not in the documents; refit with `python -m "
            "bench.fit_confidence fit`",
            "reader": key,
            "fitted_on": {
                c: sum(r["corpus"] == c for r in rows) for c in sorted({r["corpus"] for r in rows})
            },
            "genres": {c: genre[c] for c in sorted({r["corpus"] for r in rows})},
            "date": datetime.date.today().isoformat(),
            "objective": "macro over genres, each left out in turn: right outcomes (answers "
            "that are right plus refusals of questions the documents do not answer) plus "
            f"{SHOWN_WEIGHT} x right passages shown (answers and not-sure), less {VIOLATION} x "
            f"the worst breach on any genre of stated answers right >= {MIN_STATED_RIGHT} and "
            f"refusals right >= {MIN_REFUSALS_RIGHT}, less {PER_TOKEN} per prompt token read; "
            f"at most {MAX_TOKENS_P50} prompt tokens per verdict at the median (per 180 "
            "characters shown)",
            "features_chosen": fs,
            "top_configurations": [
                {
                    **r[1]._asdict(),
                    "features": r[2],
                    "score": round(r[0], 4),
                    "answer_cut": r[3],
                    "refuse_cut": r[4],
                    **{k: round(v, 3) for k, v in r[5].items()},
                    "tokens_p50": r[6],
                    "tokens_mean": round(r[7], 1),
                }
                for r in results[:8]
            ],
            "best_per_feature_set": {
                name: next(
                    {
                        **r[1]._asdict(),
                        "score": round(r[0], 4),
                        **{k: round(v, 3) for k, v in r[5].items()},
                    }
                    for r in results
                    if r[2] == name
                )
                for name in FEATURE_SETS
                if any(r[2] == name for r in results)
            },  # fmt: skip
            "models": models,
            "leave_one_genre_out": without,
        }
    )
    path.write_text(json.dumps(out, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {args.out}", file=sys.stderr)
    for name in ("reader", "rules"):
        print(name, json.dumps(models[name]["fitted"]["overall"]), file=sys.stderr)
    return 0


def _latest_key() -> str:
    folders = sorted(CACHE.glob("*/"), key=lambda p: p.stat().st_mtime)
    return folders[-1].name if folders else ""


# -- frame words --------------------------------------------------------------------------
def frames(args) -> int:
    """Fit the Zipf frequency above which a question's word only frames it: over the fitting
    corpora's answerable questions, whether each of a question's words (known to wordfreq, not
    a stopword, not a number) is in the passage that answers it, by the word's Zipf frequency
    (a logistic regression); the cut is where that falls to one in two. The absence of a word
    the answering passage lacks more often than not is no reason to say the documents don't
    say."""
    from sklearn.linear_model import LogisticRegression
    from wordfreq import zipf_frequency

    from rag.answering.verify import fuzzy_in
    from rag.reading.terms import STOPWORDS, stem, text_stems, tokens

    from .corpora import all_corpora

    x, y, counts = [], [], {}
    for c in all_corpora():
        if not c.fitted:
            continue
        for q in c.questions():
            if not q.answerable:
                continue
            have = text_stems(" ".join(quote for _, quote in q.passages))
            for word in {t.lower() for t in tokens(q.question)}:
                z = zipf_frequency(word, "en")
                if word in STOPWORDS or z <= 0 or any(ch.isdigit() for ch in word):
                    continue
                x.append([z])
                y.append(int(fuzzy_in(stem(word), have)))
                counts[c.name] = counts.get(c.name, 0) + 1
    model = LogisticRegression().fit(np.array(x), np.array(y))
    share = float(np.mean(y))
    # where the fitted share falls below the share over all question words
    cut = round(float((np.log(share / (1 - share)) - model.intercept_[0]) / model.coef_[0][0]), 2)
    path = Path(args.out)
    out = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    out["frames"] = {
        "what": "rag.answering.answer_type.frames: a question's word at or above this Zipf frequency "
        "(wordfreq, English) only frames the question; its absence is no reason to "
        "refuse. Refit with `python -m bench.fit_confidence frames`",
        "zipf_cut": cut,
        "fitted_on": counts,
        "words": len(y),
        "slope": round(float(model.coef_[0][0]), 3),
        "in_answer_share": round(share, 3),
    }
    path.write_text(json.dumps(out, indent=1) + "\n", encoding="utf-8")
    print(
        f"frame cut: Zipf {cut} ({len(y)} words; slope {model.coef_[0][0]:.3f}); wrote {path}",
        file=sys.stderr,
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    from rag.settings import Settings

    p = argparse.ArgumentParser(
        prog="python -m bench.fit_confidence", description=__doc__.splitlines()[0]
    )
    p.add_argument("action", choices=["frames", "collect", "fit"])
    p.add_argument(
        "--corpus", action="append", help="collect only these (default: the fitting corpora)"
    )
    p.add_argument("--reader", help="the reader to collect from (default: the engine's)")
    p.add_argument(
        "--candidates", type=int, default=max(COUNTS), help="sentences judged per question"
    )
    p.add_argument(
        "--windows",
        default="300",
        help="the characters of each sentence shown, comma-separated (one pass each)",
    )
    p.add_argument("--force", action="store_true", help="collect again what was collected")
    p.add_argument(
        "--rules-only",
        action="store_true",
        help="recompute the rules' signals of what was collected, keeping the "
        "reader's verdicts where the ranking did not change and asking it again "
        "where it did",
    )
    p.add_argument("--key", help="fit on this collection (a folder in bench-results/confidence)")
    p.add_argument("--out", default=str(conf.PATH))
    args = p.parse_args(argv)
    if args.action == "frames":
        return frames(args)
    if args.action == "collect":
        return collect(args, Settings.load(mode="extractive", reader=args.reader))
    return fit(args)


if __name__ == "__main__":
    raise SystemExit(main())
