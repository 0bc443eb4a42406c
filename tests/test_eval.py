"""`rag eval` scores what it claims to score."""

import json
import subprocess
import sys

import pytest

from bench.evaluate import citation_scores, load_gold, run
from rag import Answer, Citation

from .conftest import ROOT, file_text

GOLD = ROOT / "eval" / "gold.jsonl"


def test_the_gold_set_is_valid_and_big_enough():
    r = subprocess.run(
        [sys.executable, str(ROOT / "eval" / "check_gold.py")], capture_output=True, text=True
    )
    assert r.returncode == 0, r.stdout + r.stderr
    items = load_gold(GOLD)
    assert len(items) >= 40
    assert sum(not i.answerable for i in items) >= 8
    assert sum(bool(i.history) for i in items) >= 5
    for item in items:
        for path, start, end in item.gold:
            assert file_text(path)[start:end].strip()


def _answer(sentences):
    """An Answer whose sentences cite the given (source, start, end) spans."""
    cites, parts, n = [], [], 0
    for text, spans in sentences:
        marks = ""
        for source, start, end in spans:
            n += 1
            cites.append(Citation(n, "d", "t", source, start, end, file_text(source)[start:end]))
            marks += f"[{n}]"
        parts.append(f"{text} {marks}")
    return Answer("q", " ".join(parts), "extractive", tuple(cites))


def test_citation_scores_follow_alce(pipeline):
    item = next(i for i in load_gold(GOLD) if i.id == "q31")  # civilian deaths
    source, start, end = item.gold[0]
    quote = file_text(source)[start:end]
    other = (source, 0, file_text(source).index("\n"))  # the article's title line: not gold

    exact = citation_scores(pipeline, _answer([(quote, [(source, start, end)])]), item.gold)
    assert exact["gold_recall"] == (1, 1) and exact["gold_precision"] == (1, 1)
    assert exact["checker_recall"] == (1, 1) and exact["checker_precision"] == (1, 1)

    padded = citation_scores(pipeline, _answer([(quote, [(source, start, end), other])]), item.gold)
    assert padded["gold_recall"] == (1, 1)
    assert padded["gold_precision"] == (1, 2)  # the extra citation is not needed
    assert padded["checker_precision"] == (1, 2)

    wrong = citation_scores(pipeline, _answer([(quote, [other])]), item.gold)
    assert wrong["gold_recall"] == (0, 1) and wrong["checker_recall"] == (0, 1)


@pytest.mark.slow
def test_eval_runs_the_engine_and_reports_every_metric(pipeline, tmp_path):
    items = [i for i in load_gold(GOLD) if i.id in ("q31", "q34", "q50", "q55")]
    result = run(pipeline, items, {"mode": "extractive"})
    s = result["summary"]
    assert s["questions"] == 4
    rows = {r["id"]: r for r in result["rows"]}
    # the clear cases: a number the article states, and the weather it never mentions
    assert (
        rows["q31"]["outcome"] == "answer" and rows["q31"]["correct"] and rows["q31"]["cites_gold"]
    )
    assert rows["q50"]["outcome"] == "not_in_documents"
    # the summary is what the rows say, whatever the harder two came out as
    answerable = [r for r in rows.values() if r["answerable"]]
    refused = [r for r in rows.values() if r["outcome"] == "not_in_documents"]
    assert s["answer_accuracy"] == 100 * sum(r["correct"] for r in answerable) / len(answerable)
    assert s["right_shown"] == 100 * sum(r["shown_right"] for r in answerable) / len(answerable)
    assert s["abstention_precision"] == 100 * sum(not r["answerable"] for r in refused) / len(
        refused
    )
    assert s["abstention_recall"] == 100 * len(refused) / 2  # q50 and q55 are not in the articles
    assert sum(s["outcomes"].values()) == 4
    for key in (
        "recall@k",
        "mrr",
        "citation_precision_checker",
        "citation_recall_gold",
        "retrieve_p50_ms",
        "total_p95_ms",
    ):
        assert s[key] is not None
    json.dumps(result)  # the results file is plain JSON


def test_news_corpus_quotes_are_found_where_the_gold_set_puts_them():
    from bench.corpora import corpus
    from bench.evaluate import corpus_items

    by_id = {i.id: i for i in load_gold(GOLD)}
    items = corpus_items(corpus("news"))
    assert len(items) == len(by_id)
    for item in items:
        assert sorted(item.gold) == sorted(by_id[item.id].gold), item.id


def test_held_out_averages_only_corpora_the_engine_was_not_fitted_on():
    from bench.evaluate import macro

    a = {
        "questions": 60,
        "unanswerable": 20,
        "answer_accuracy": 50.0,
        "cites_gold": 40.0,
        "abstention_recall": 30.0,
        "abstention_precision": None,
        "precision_when_answering": 60.0,
        "right_shown": 70.0,
        "confidently_wrong": 5.0,
        "calibration_error": 0.05,
        "reader_recall": None,
    }
    b = dict(a, answer_accuracy=70.0, abstention_precision=80.0)
    m = macro([a, b])
    assert m["answer_accuracy"] == 60.0 and m["abstention_precision"] == 80.0
    assert m["questions"] == 120 and m["corpora"] == 2


@pytest.mark.slow
def test_rag_eval_json_reports_every_corpus_and_what_is_held_out(tmp_path):
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "rag",
            "eval",
            "--json",
            "--mode",
            "extractive",
            "--corpus",
            "news",
            "--out",
            str(tmp_path / "r.json"),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=900,
    )
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    news = result["corpora"]["news"]
    for key in (
        "questions",
        "unanswerable",
        "answer_accuracy",
        "cites_gold",
        "abstention_recall",
        "abstention_precision",
        "precision_when_answering",
        "right_shown",
        "confidently_wrong",
        "calibration_error",
        "reader_recall",
    ):
        assert news[key] is not None, key
    assert sum(news["outcomes"].values()) == news["questions"]
    assert news["questions"] == 63 and news["unanswerable"] == 14
    assert result["fitted_on"] == ["news"] and result["held_out"] is None


def test_fit_scorer_scores_selection_and_abstention():
    import numpy as np

    from bench.fit_scorer import score

    rows = [
        {"answerable": True, "x": np.array([[0.9], [0.1]]), "y": np.array([1, 0])},
        {"answerable": True, "x": np.array([[0.2], [0.8]]), "y": np.array([1, 0])},
        {"answerable": False, "x": np.array([[0.3]]), "y": np.array([0])},
    ]
    s = score(rows, np.array([1.0]))
    assert s["top1"] == 50.0  # the second question's best sentence is not the gold one
    assert s["abstention_auc"] == 1.0  # both answerable questions' best beats the unanswerable


# -- the honesty figures: calibration, confident mistakes, the right passage shown ------------
def _row(outcome, confidence, answerable=True, right=True):
    shown = answerable and right and outcome != "not_in_documents"
    return {
        "outcome": outcome,
        "confidence": confidence,
        "answerable": answerable,
        "correct": (outcome == "answer" and shown) if answerable else None,
        "shown_right": shown if answerable else None,
        "judged_right": None,
        "judged": 0,
        "rank": None,
        "cites_gold": None,
        "mode": "abstained" if outcome == "not_in_documents" else "extractive",
    }


def test_calibration_error_is_zero_when_the_confidence_matches_how_often_it_holds():
    from bench.evaluate import calibration, ece

    # four answers at 0.75, three of them right; four refusals at 0.25 ... of which one right
    rows = (
        [_row("answer", 0.75)] * 3
        + [_row("answer", 0.75, right=False)]
        + [_row("not_in_documents", 0.25, answerable=False)]
        + [_row("not_in_documents", 0.25)] * 3
    )
    assert ece(*calibration(rows)) == 0.0
    # always sure and right half the time: off by a half
    assert ece([1.0, 1.0], [True, False]) == 0.5


def test_the_summary_counts_confident_mistakes_and_right_passages_shown():
    from bench.evaluate import summarize

    rows = [
        _row("answer", 0.9),
        _row("answer", 0.7, right=False),
        _row("answer", 0.65, answerable=False),  # a confident answer to the unanswerable
        _row("answer", 0.55, right=False),  # wrong, but not confident
        _row("not_sure", 0.4),
        _row("not_sure", 0.3, right=False),
        _row("not_in_documents", 0.9, answerable=False),
        _row("not_in_documents", 0.8),
    ]
    s = summarize(rows)
    assert s["confidently_wrong"] == round(100 * 2 / 8, 1)
    answerable = [r for r in rows if r["answerable"]]
    assert s["right_shown"] == round(100 * 2 / len(answerable), 1)  # the 0.9 answer, a not-sure
    assert s["answer_accuracy"] == round(100 * 1 / len(answerable), 1)
    assert s["abstention_precision"] == 50.0 and s["outcomes"] == {
        "answer": 4,
        "not_sure": 2,
        "not_in_documents": 2,
    }


def test_the_reliability_diagram_is_drawn(tmp_path):
    from bench.evaluate import plot

    rows = [
        _row("answer", 0.9),
        _row("not_sure", 0.4, right=False),
        _row("not_in_documents", 0.8, answerable=False),
    ]
    results = {"held_out": {"corpora_names": ["a"]}, "rows": {"a": rows}}
    plot(results, str(tmp_path / "r.png"))
    assert (tmp_path / "r.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
