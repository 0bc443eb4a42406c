"""`rag eval`: every benchmark corpus (bench.corpora) through the same engine the UI uses.

Per corpus: retrieval recall@k and MRR against the gold passages; answer accuracy (expected
facts present, no abstention); ALCE-style citation precision and recall, judged two ways (the
engine's own checker, and overlap with the gold passages); abstention precision and recall;
precision when answering (the share of given answers that are right); latency. "held_out"
macro-averages the corpora the engine was not fitted on: its rules and thresholds were tuned
on the news articles (`"fitted": true` in a corpus.json), so only the others say how it does on
a person's own documents.
"""

from __future__ import annotations

import functools
import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from rag.answering.pipeline import Pipeline
from rag.answering.query import check_question, read
from rag.answering.verify import split_markers
from rag.errors import IndexCorrupt, IndexMismatch, InputError
from rag.settings import Settings
from rag.types import Answer, Citation

COMPARE = {
    "hybrid": {},
    "dense": {"retrieval": "dense"},
    "bm25": {"retrieval": "bm25"},
    "extractive": {"mode": "extractive"},
    "k=3": {"top_k": 3},
    "k=8": {"top_k": 8},
}


@dataclass(frozen=True)
class GoldItem:
    id: str
    question: str
    answerable: bool
    facts: list[list[str]]
    gold: list[tuple[str, int, int]]  # (resolved file path, start, end)
    history: list[str] = field(default_factory=list)


def load_gold(path: str | Path) -> list[GoldItem]:
    path = Path(path)
    root = path.resolve().parent.parent
    items = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        row = json.loads(line)
        gold = [(str((root / g["file"]).resolve()), g["start"], g["end"]) for g in row["gold"]]
        items.append(
            GoldItem(
                row["id"],
                row["question"],
                row["answerable"],
                row["facts"],
                gold,
                row.get("history", []),
            )
        )
    return items


def _overlaps(source: str, start: int, end: int, gold: list[tuple[str, int, int]]) -> bool:
    src = str(Path(source).resolve())
    return any(src == f and start < e and s < end for f, s, e in gold)


def answer_sentences(answer: Answer) -> list[tuple[str, list[int]]]:
    """Split an answer at its markers: [(sentence, [n, ...]), ...]."""
    out = []
    for part in re.findall(r".+?(?:\s*\[\d+\])+", answer.text, flags=re.S):
        plain, ns = split_markers(part)
        if plain:
            out.append((plain, ns))
    return out


def citation_scores(pipeline: Pipeline, answer: Answer, gold) -> dict[str, tuple[int, int]]:
    """ALCE-style counts: recall = supported sentences / sentences; precision = needed
    citations / citations, where a citation is not needed if it alone does not support its
    sentence and the others do. Support is judged by the engine's checker and by gold overlap."""
    by_n: dict[int, Citation] = {c.n: c for c in answer.citations}
    counts = {
        k: [0, 0] for k in ("checker_recall", "checker_precision", "gold_recall", "gold_precision")
    }
    for sentence, ns in answer_sentences(answer):
        cites = [by_n[n] for n in ns if n in by_n]
        for name in ("checker", "gold"):
            ok = functools.partial(_supports, name, pipeline, sentence, cites, gold)
            everything = list(range(len(cites)))
            supported = ok(everything)
            counts[f"{name}_recall"][0] += int(supported)
            counts[f"{name}_recall"][1] += 1
            for i in everything:
                rest = [j for j in everything if j != i]
                needed = supported and (ok([i]) or not rest or not ok(rest))
                counts[f"{name}_precision"][0] += int(needed)
                counts[f"{name}_precision"][1] += 1
    return {k: (v[0], v[1]) for k, v in counts.items()}


def _supports(
    judge: str, pipeline: Pipeline, sentence: str, cites: list[Citation], gold, idx: list[int]
) -> bool:
    if not idx:
        return False
    if judge == "gold":
        return any(_overlaps(cites[i].source, cites[i].start, cites[i].end, gold) for i in idx)
    evs = [_as_evidence(cites[i]) for i in idx]
    return pipeline.checker.check(sentence, evs, idx).ok


def _as_evidence(c: Citation):
    from rag.types import Evidence

    return Evidence(c.doc_id, c.title, c.source, c.start, c.end, c.quote, c.score)


def _pct(num: float, den: float) -> float | None:
    return round(100.0 * num / den, 1) if den else None


def percentile(values: list[float], q: float) -> float | None:
    """The q-th percentile, rounded to 0.1; None for no values."""
    return round(float(np.percentile(values, q)), 1) if values else None


def gold_rank(pipeline: Pipeline, item: GoldItem, s: Settings) -> int | None:
    """The rank of the first retrieved chunk holding a gold sentence, or None."""
    passages = pipeline.retrieve(read(check_question(item.question, s), item.history), s).passages
    return next(
        (
            i + 1
            for i, p in enumerate(passages)
            if any(
                _overlaps(pipeline.index.docs[p.chunk.doc_id].doc.source, a, b, item.gold)
                for a, b in p.chunk.sentences
            )
        ),
        None,
    )


def run(pipeline: Pipeline, items: list[GoldItem], overrides: dict | None = None) -> dict:
    s = pipeline.settings.replace(**(overrides or {}))
    rows = []
    totals = {
        k: [0, 0] for k in ("checker_recall", "checker_precision", "gold_recall", "gold_precision")
    }
    lat = {"retrieve_ms": [], "first_token_ms": [], "total_ms": [], "reader_ms": []}
    for item in items:
        rank = gold_rank(pipeline, item, s)
        answer = pipeline.ask(item.question, item.history, **(overrides or {}))

        def holds(text: str, item=item) -> bool:
            return all(any(a.lower() in text.lower() for a in alts) for alts in item.facts)

        facts_ok = holds(answer.text)
        cites_gold = any(_overlaps(c.source, c.start, c.end, item.gold) for c in answer.citations)
        row = {
            "id": item.id,
            "question": item.question,
            "answerable": item.answerable,
            "mode": answer.mode,
            "outcome": answer.outcome,
            "answer": answer.text,
            "correct": None,
            "cites_gold": None,
            "shown_right": None,
            "judged_right": None,
            "rank": rank,
            "note": answer.note,
            "why": answer.why,
            "confidence": answer.confidence,
            "reader_tokens": answer.timings.get("reader_tokens"),
            "judged": len(answer.judged),
        }
        if item.answerable:
            row["correct"] = answer.outcome == "answer" and facts_ok
            row["shown_right"] = answer.outcome != "not_in_documents" and facts_ok
            row["judged_right"] = any(holds(u) for u in answer.judged)
            row["cites_gold"] = cites_gold
            for k, (a, b) in citation_scores(pipeline, answer, item.gold).items():
                totals[k][0] += a
                totals[k][1] += b
        for k in lat:
            if k in answer.timings:
                lat[k].append(answer.timings[k])
        if "reader_ms" in answer.timings:  # the reader's own time, after retrieval
            lat["reader_ms"][-1] -= answer.timings.get("retrieve_ms", 0.0)
        rows.append(row)
    summary = summarize(rows, totals, lat)
    return {
        "settings": {
            "retrieval": s.retrieval,
            "mode": s.mode,
            "top_k": s.top_k,
            "evidence_k": s.evidence_k,
        },
        "summary": summary,
        "rows": rows,
    }


CONFIDENT = 0.6  # an answer this sure or surer that is wrong counts as confidently wrong


def calibration(rows: list[dict]) -> tuple[list[float], list[bool]]:
    """Each question's confidence and whether what it was given with holds: for an answer or
    a passage marked not sure, that it holds the answer; for "the documents don't say", that
    the documents do not answer."""
    conf, ok = [], []
    for r in rows:
        if r["confidence"] is None:
            continue
        conf.append(r["confidence"])
        ok.append(
            not r["answerable"] if r["outcome"] == "not_in_documents" else bool(r["shown_right"])
        )
    return conf, ok


def ece(confidence: list[float], ok: list[bool], bins: int = 10) -> float | None:
    """Expected calibration error over `bins` equal-width bins of confidence."""
    if not confidence:
        return None
    c, y = np.asarray(confidence, float), np.asarray(ok, float)
    which = np.minimum((c * bins).astype(int), bins - 1)
    gap = sum(
        abs(c[which == b].mean() - y[which == b].mean()) * (which == b).sum()
        for b in range(bins)
        if (which == b).any()
    )
    return round(float(gap / len(c)), 3)


def summarize(rows: list[dict], totals: dict | None = None, lat: dict | None = None) -> dict:
    """The headline figures of a set of answered questions (`run`'s rows)."""
    totals = totals or {
        k: [0, 0] for k in ("checker_recall", "checker_precision", "gold_recall", "gold_precision")
    }
    lat = lat or {}
    ans = [r for r in rows if r["answerable"]]
    unans = [r for r in rows if not r["answerable"]]
    abstained = [r for r in rows if r["outcome"] == "not_in_documents"]
    answered = [r for r in rows if r["outcome"] == "answer"]
    confident_wrong = [
        r for r in answered if (r["confidence"] or 0) >= CONFIDENT and not r["correct"]
    ]
    tokens = [r["reader_tokens"] for r in rows if r.get("reader_tokens")]
    summary = {
        "questions": len(rows),
        "unanswerable": len(unans),
        "recall@k": _pct(sum(r["rank"] is not None for r in ans), len(ans)),
        "mrr": round(sum(1 / r["rank"] for r in ans if r["rank"]) / max(1, len(ans)), 3),
        "answer_accuracy": _pct(sum(bool(r["correct"]) for r in ans), len(ans)),
        "cites_gold": _pct(sum(bool(r["cites_gold"]) for r in ans), len(ans)),
        "citation_precision_checker": _pct(*totals["checker_precision"]),
        "citation_recall_checker": _pct(*totals["checker_recall"]),
        "citation_precision_gold": _pct(*totals["gold_precision"]),
        "citation_recall_gold": _pct(*totals["gold_recall"]),
        "abstention_precision": _pct(sum(not r["answerable"] for r in abstained), len(abstained)),
        "abstention_recall": _pct(
            sum(r["outcome"] == "not_in_documents" for r in unans), len(unans)
        ),
        "precision_when_answering": _pct(sum(bool(r["correct"]) for r in answered), len(answered)),
        "unanswerable_stated": _pct(sum(r["outcome"] == "answer" for r in unans), len(unans)),
        "right_shown": _pct(sum(bool(r["shown_right"]) for r in ans), len(ans)),
        "confidently_wrong": _pct(len(confident_wrong), len(rows)),
        "calibration_error": ece(*calibration(rows)),
        "reader_recall": _pct(sum(bool(r["judged_right"]) for r in ans), len(ans))
        if any(r.get("judged") for r in rows)
        else None,
        "outcomes": {
            o: sum(r["outcome"] == o for r in rows)
            for o in ("answer", "not_sure", "not_in_documents")
        },
        "reader_tokens_p50": percentile(tokens, 50),
        "generated_share": _pct(sum(r["mode"] == "generate" for r in ans), len(ans)),
    }
    for k in ("retrieve", "first_token", "reader", "total"):
        summary[f"{k}_p50_ms"] = percentile(lat.get(f"{k}_ms", []), 50)
        summary[f"{k}_p95_ms"] = percentile(lat.get(f"{k}_ms", []), 95)
    return summary


HEADLINE = (
    "answer_accuracy",
    "cites_gold",
    "abstention_recall",
    "abstention_precision",
    "precision_when_answering",
    "unanswerable_stated",
    "right_shown",
    "confidently_wrong",
    "calibration_error",
    "reader_recall",
)


def corpus_items(c) -> list[GoldItem]:
    """A corpus's questions, with each gold quote found in the text the engine reads."""
    from .corpora import document_text, locate

    texts: dict[str, str] = {}
    items = []
    for q in c.questions():
        gold = []
        for path, quote in q.passages:
            if path not in texts:
                texts[path] = document_text(Path(path))
            gold += [(str(Path(path).resolve()), s, e) for s, e in locate(texts[path], quote)]
        items.append(GoldItem(q.id, q.question, q.answerable, q.facts, gold, q.history))
    return items


def corpus_index(c, settings: Settings, embedder):
    """The corpus's own index, built or brought up to date, in eval/corpora/<name>/index for
    the default embedder and index-<embedder> for another, so comparing embedders (`python -m
    bench.embedders`) does not re-embed a corpus at every switch."""
    from rag.indexing.indexer import update

    from .corpora import CORPORA

    missing = [p.name for p in c.paths if not p.exists()]
    if missing:
        raise InputError(
            f"{c.name}: {', '.join(missing)} not fetched; run `make eval`, or "
            "`python -m bench.corpora fetch` once its Debian packages are installed"
        )
    from rag.indexing.embed import default_embedder_name

    name = (
        "index"
        if embedder.name == default_embedder_name()
        else "index-" + re.sub(r"[^A-Za-z0-9.+-]+", "_", embedder.name)
    )
    s = settings.replace(index_dir=str(CORPORA / c.name / name))
    try:
        index, report = update(s, embedder, [str(c.folder)])
    except (IndexCorrupt, IndexMismatch):  # built by an older version: it is ours to rebuild
        index, report = update(s, embedder, [str(c.folder)], rebuild=True)
    if report.errors:
        raise InputError(f"{c.name}: {report.errors[0]}")
    return index


def corpus_recall(embedder, settings: Settings, corpora: list) -> dict[str, float]:
    """The share of each corpus's answerable questions whose gold passage is retrieved
    (recall@top_k), with this embedder's own index of it; NaN for a corpus not fetched."""
    out: dict[str, float] = {}
    pipeline = None
    for c in corpora:
        try:
            index = corpus_index(c, settings, embedder)
        except InputError as e:  # a corpus not fetched is skipped, and said
            out[c.name] = float("nan")
            print(f"bench: recall on {c.name} skipped: {e}", file=sys.stderr)
            continue
        if pipeline is None:
            pipeline = Pipeline(settings, index, embedder, None)
        else:
            pipeline.set_index(index)
        ranks = [gold_rank(pipeline, it, settings) for it in corpus_items(c) if it.answerable]
        out[c.name] = sum(r is not None for r in ranks) / max(1, len(ranks))
    return out


def macro(summaries: list[dict]) -> dict:
    out: dict = {
        "corpora": len(summaries),
        "questions": sum(x["questions"] for x in summaries),
        "unanswerable": sum(x["unanswerable"] for x in summaries),
    }
    for k in HEADLINE:
        vals = [x[k] for x in summaries if x.get(k) is not None]
        out[k] = (
            round(sum(vals) / len(vals), 3 if k == "calibration_error" else 1) if vals else None
        )
    return out


def run_corpora(
    pipeline: Pipeline, corpora: list, overrides: dict | None = None, log=None, shipped=False
) -> dict:
    """{"corpora": {name: summary}, "held_out": macro-average over the corpora nobody fitted
    on, "genres": {genre: summary}, "left_out_genres": macro-average over genres,
    "fitted_on": [...], "rows"}.

    A fitting corpus is scored with the confidence fitted without its genre (unless
    `shipped`), so that every genre's figures come from a model that never saw that kind of
    text; its summary says which ("confidence")."""
    from rag.answering import confidence

    shipped_models = pipeline.models
    results, rows = {}, {}
    for c in corpora:
        pipeline.set_index(corpus_index(c, pipeline.settings, pipeline.embedder))
        left_out = {} if shipped or not c.fitted else confidence.load(without=c.genre)
        pipeline.models = left_out or shipped_models
        try:
            r = run(pipeline, corpus_items(c), overrides)
        finally:
            pipeline.models = shipped_models
        results[c.name], rows[c.name] = r["summary"], r["rows"]
        results[c.name]["fitted"] = c.fitted
        results[c.name]["genre"] = c.genre
        results[c.name]["confidence"] = f"fitted without {c.genre}" if left_out else "shipped"
        if log:
            log(
                f"{c.name}: {r['summary']['answer_accuracy']}% right, "
                f"{r['summary']['abstention_recall']}% of unanswerable refused"
            )
    held = [results[c.name] for c in corpora if not c.fitted]
    held_out = None
    if held:
        # macro-averages, but the calibration error over every held-out question together
        # (ten bins over one corpus's 70-odd questions are mostly noise)
        pooled = [r for c in corpora if not c.fitted for r in rows[c.name]]
        held_out = {
            "corpora_names": [c.name for c in corpora if not c.fitted],
            **macro(held),
            "calibration_error_macro": macro(held)["calibration_error"],
            "calibration_error": ece(*calibration(pooled)),
        }
    # per genre, every question whose confidence never saw its genre: the held-out corpora,
    # and the fitting ones scored without their genre
    genres: dict[str, dict] = {}
    for g in sorted({c.genre for c in corpora}):
        mine = [
            c
            for c in corpora
            if c.genre == g and (not c.fitted or results[c.name]["confidence"] != "shipped")
        ]
        if mine:
            genres[g] = {
                "corpora_names": [c.name for c in mine],
                **summarize([r for c in mine for r in rows[c.name]]),
            }
    left_out = None
    if genres:
        left_out = {"genres": list(genres), **macro(list(genres.values()))}
    return {
        "corpora": results,
        "held_out": held_out,
        "genres": genres,
        "left_out_genres": left_out,
        "fitted_on": [c.name for c in corpora if c.fitted],
        "rows": rows,
    }


def table(results: dict) -> str:
    cols = dict(results["corpora"])
    if results.get("held_out"):
        cols["held out"] = results["held_out"]
    for g, summary in (results.get("genres") or {}).items():
        cols[f"({g})"] = summary
    if results.get("left_out_genres"):
        cols["genres"] = results["left_out_genres"]
    skip = ("corpora_names", "genres", "genre", "confidence")
    keys = [k for k in next(iter(results["corpora"].values())) if k not in skip]
    width = max(len(k) for k in keys)
    lines = [f"{'':{width}}  " + "  ".join(f"{n:>12}" for n in cols)]
    for k in keys:
        vals = [cols[n].get(k) for n in cols]
        vals = ["/".join(map(str, v.values())) if isinstance(v, dict) else v for v in vals]
        lines.append(f"{k:{width}}  " + "  ".join(f"{'-' if v is None else v:>12}" for v in vals))
    return "\n".join(lines)


def plot(results: dict, path: str) -> None:
    """The reliability diagram of the held-out corpora (all corpora when none is held out):
    per tenth of confidence, the share of questions where what the engine said holds, against
    the confidence it gave, with how many questions each bin holds."""
    try:
        import matplotlib
    except ModuleNotFoundError:
        raise InputError("--plot needs matplotlib: pip install matplotlib") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = (results["held_out"] or {}).get("corpora_names") or list(results["rows"])
    rows = [r for n in names for r in results["rows"][n]]
    conf, ok = (np.asarray(x, float) for x in calibration(rows))
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(6, 7), height_ratios=(3, 1), sharex=True)
    top.plot([0, 1], [0, 1], ls="--", color="grey", label="perfectly calibrated")
    which = np.minimum((conf * 10).astype(int), 9)
    for outcome, colour in (
        ("answer", "tab:green"),
        ("not_sure", "tab:orange"),
        ("not_in_documents", "tab:red"),
    ):
        mine = np.array([r["outcome"] == outcome for r in rows if r["confidence"] is not None])
        xs, ys, ns = [], [], []
        for b in range(10):
            m = mine & (which == b)
            if m.any():
                xs.append(conf[m].mean())
                ys.append(ok[m].mean())
                ns.append(int(m.sum()))
        top.scatter(
            xs,
            ys,
            s=[20 + 4 * n for n in ns],
            color=colour,
            alpha=0.7,
            label=outcome.replace("_", " "),
        )
    xs = [conf[which == b].mean() for b in range(10) if (which == b).any()]
    ys = [ok[which == b].mean() for b in range(10) if (which == b).any()]
    top.plot(xs, ys, marker="o", color="black", label="all outcomes")
    top.set_ylabel("share where what was said holds")
    top.set_title(
        f"Held out: {', '.join(names)}\n{len(conf)} questions, expected calibration "
        f"error {ece(list(conf), list(ok))}",
        fontsize=9,
    )
    top.legend(fontsize=8, loc="upper left")
    bottom.hist(conf, bins=10, range=(0, 1), color="tab:blue", alpha=0.7)
    bottom.set_xlabel("confidence the engine gave")
    bottom.set_ylabel("questions")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _pipeline(settings: Settings, first) -> Pipeline:
    from rag.indexing.embed import load_embedder
    from rag.loader import make_models

    embedder = load_embedder(settings.embed_model, settings.embed_backend)
    generator, reader = make_models(settings, with_llm=settings.mode == "generate")
    return Pipeline(settings, corpus_index(first, settings, embedder), embedder, generator, reader)


def main(args, settings: Settings) -> int:
    from .corpora import all_corpora, corpus

    chosen = [corpus(n) for n in args.corpus] if args.corpus else all_corpora()
    pipeline = _pipeline(settings, chosen[0])
    configs: dict[str, dict] = {"default": {}}
    if args.compare:
        configs.update(COMPARE)
    for spec in args.config or []:
        name, _, kv = spec.partition("=")
        configs[name] = {k: _typed(v) for k, v in (p.split(":", 1) for p in kv.split(",") if p)}
    say = None if args.json else (lambda line: print(line, file=sys.stderr))
    shipped = getattr(args, "shipped", False)
    results = {
        name: run_corpora(pipeline, chosen, ov, say, shipped) for name, ov in configs.items()
    }
    reader = pipeline.reader.name if pipeline.reader is not None else "none (the rules)"
    for r in results.values():
        r["reader"] = reader
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=1, ensure_ascii=False))
    if getattr(args, "plot", None):
        plot(results["default"], args.plot)
    brief = {n: {k: v for k, v in r.items() if k != "rows"} for n, r in results.items()}
    if args.json:
        out = dict(brief["default"])
        if len(brief) > 1:
            out["compare"] = {n: r for n, r in brief.items() if n != "default"}
        print(json.dumps(out, indent=1))
    else:
        for name, r in results.items():
            print(f"== {name} ==" if len(results) > 1 else "", end="\n" if len(results) > 1 else "")
            print(table(r))
        for rows in results["default"]["rows"].values():
            for r in rows:
                if (r["answerable"] and not r["correct"]) or (
                    not r["answerable"] and r["outcome"] != "not_in_documents"
                ):
                    print(
                        f"  miss {r['id']}: {r['question']} -> [{r['outcome']}] {' '.join(r['answer'].split())[:120]}",
                        file=sys.stderr,
                    )
        print(f"(full results in {args.out})")
    return 0


def _typed(v: str):
    return int(v) if v.isdigit() else v
