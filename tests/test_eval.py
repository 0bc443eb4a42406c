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
    r = subprocess.run([sys.executable, str(ROOT / "eval" / "check_gold.py")], capture_output=True, text=True)
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
    assert s["answer_accuracy"] == 100.0 and s["cites_gold"] == 100.0
    assert s["abstention_precision"] == 100.0 and s["abstention_recall"] == 100.0
    for key in ("recall@k", "mrr", "citation_precision_checker", "citation_recall_gold",
                "retrieve_p50_ms", "total_p95_ms"):
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

    a = {"questions": 60, "unanswerable": 20, "answer_accuracy": 50.0, "cites_gold": 40.0,
         "abstention_recall": 30.0, "abstention_precision": None, "precision_when_answering": 60.0}
    b = dict(a, answer_accuracy=70.0, abstention_precision=80.0)
    m = macro([a, b])
    assert m["answer_accuracy"] == 60.0 and m["abstention_precision"] == 80.0
    assert m["questions"] == 120 and m["corpora"] == 2


@pytest.mark.slow
def test_rag_eval_json_reports_every_corpus_and_what_is_held_out(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "rag", "eval", "--json", "--mode", "extractive", "--corpus", "news",
         "--out", str(tmp_path / "r.json")],
        capture_output=True, text=True, cwd=ROOT, timeout=900,
    )
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    news = result["corpora"]["news"]
    for key in ("questions", "unanswerable", "answer_accuracy", "cites_gold", "abstention_recall",
                "abstention_precision", "precision_when_answering"):
        assert news[key] is not None, key
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
