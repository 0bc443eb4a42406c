"""The confidence fit's choices (bench.fit_confidence), on small made-up designs, and what the
shipped fit says about itself."""

import json

import numpy as np

from bench import fit_confidence as fc
from rag.answering import confidence


def _design(groups, right, absent, hard=()):
    n = len(groups)
    return fc.Design(
        ["x"], np.zeros((n, 1)), np.array(right), np.array(absent), np.array(groups),
        np.zeros(n), np.zeros(n, bool), [{} for _ in range(n)], list(hard),
    )  # fmt: skip


def test_the_cuts_keep_the_promise_on_every_genre_not_only_pooled():
    """Genre "a" is right whenever confident; genre "b" is wrong at 0.7–0.8. Pooled, an
    answer cut of 0.7 would be 90% right, but on "b" it would break the promise, so the cut
    must rise above b's confident wrong answers."""
    p_a = np.linspace(0.6, 0.99, 40)
    p_b = np.concatenate([np.full(6, 0.75), np.linspace(0.85, 0.99, 14)])
    right = [1] * 40 + [0] * 6 + [1] * 14
    d = _design(["a"] * 40 + ["b"] * 20, right, [0] * 60)
    right_p = np.concatenate([p_a, p_b])
    ta, _, o, _ = fc.choose_cuts(right_p, np.zeros(60), d)
    assert ta > 0.75
    for g in ("a", "b"):
        m = d.groups == g
        assert fc.outcomes(right_p, np.zeros(60), d, ta, fc.NEVER, m)["stated_right"] >= 0.9


def test_refusals_are_cut_where_they_are_right():
    absent_p = np.concatenate([np.linspace(0.8, 0.99, 20), np.linspace(0.3, 0.6, 20)])
    d = _design(["a"] * 20 + ["b"] * 20, [0] * 20 + [1] * 20, [1] * 20 + [0] * 20)
    _, tb, o, _ = fc.choose_cuts(np.zeros(40), absent_p, d)
    assert 0.6 < tb <= 0.8 and o["refusal_precision"] == 1.0 and o["refusal_recall"] == 1.0


def test_models_fitted_without_a_genre_load_by_its_name(tmp_path):
    raw = json.loads(confidence.PATH.read_text(encoding="utf-8"))
    path = tmp_path / "confidence.json"
    path.write_text(json.dumps({**raw, "leave_one_genre_out": {"news": raw["models"]}}))
    assert set(confidence.load(path, without="news")) == set(confidence.load(path))
    assert confidence.load(path, without="legal") == {}
