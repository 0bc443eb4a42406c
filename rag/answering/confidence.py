"""How sure the engine is of an answer: a logistic regression over the signals it already has
(the reader's verdicts, the rule score, whether the question's words are found), fitted on
labelled questions by `python -m bench.fit_confidence` and shipped as JSON with what it was
fitted on (`rag/answering/confidence.json`). Nothing here is tuned by hand.

The same file holds how the reader's verdicts are used: how many candidates it judges, when
it stops early, how its verdict and the rule score combine to choose the passage to quote, and
the threshold below which the engine says the documents don't say.

    >>> s = Signals(p=(0.9, 0.2), rule=(1.1, 0.9), chosen=0, cosine=0.6, coverage="")
    >>> round(features(s, reader=True)["reader_logit"], 2)
    2.2
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

PATH = Path(__file__).with_name("confidence.json")
P_FLOOR = 1e-4  # reader probabilities are clipped to [P_FLOOR, 1 - P_FLOOR] before the logit
# The log-odds of "yes" for one prompt move by up to 0.13 with how the model is run: judged
# alone or batched, with an AVX-512 or an AVX2 build of llama.cpp (measured; tests/test_reader.py).
# A verdict ahead of another by less than this is not a verdict between them.
READER_NOISE = 0.13


@dataclass(frozen=True)
class Signals:
    """What the confidence of one answer is computed from."""

    p: tuple[float, ...]  # the reader's P(answers) per judged candidate; () with no reader
    rule: tuple[float, ...]  # the rule score of each candidate, best first
    chosen: int  # the candidate the answer quotes
    cosine: float  # question to best sentence
    coverage: str  # "" when the rules find the question covered, else Coverage.kind
    nowhere: bool = False  # a word the question asks about is in no document at all
    runner_up: float = 0.0  # the rule score of the second-ranked sentence (0 with none)


def logit(p: float) -> float:
    p = min(1 - P_FLOOR, max(P_FLOOR, p))
    return math.log(p / (1 - p))


def features(s: Signals, reader: bool) -> dict[str, float]:
    """The named features of `s`; the reader's only when `reader`."""
    out: dict[str, float] = {}
    if reader:
        judged = list(s.p)
        mine = judged[s.chosen] if s.chosen < len(judged) else 0.0
        others = [p for i, p in enumerate(judged) if i != s.chosen]
        out["reader_logit"] = logit(mine)
        out["reader_other"] = logit(max(others)) if others else logit(0.0)
        out["chose_top"] = float(s.chosen == 0)
        out["judged"] = float(len(judged))
        # the reader's own pick is the rules' best sentence
        out["reader_agrees"] = float(judged.index(max(judged)) == 0) if judged else 0.0
    out["rule_score"] = s.rule[s.chosen] if s.rule else 0.0
    out["rule_top"] = s.rule[0] if s.rule else 0.0
    out["rule_margin"] = out["rule_top"] - s.runner_up  # how far the best stands out
    # the same, free of the scale of the collection's scores: against the best score found
    top = abs(out["rule_top"]) or 1.0
    out["rule_ratio"] = out["rule_score"] / top
    out["margin_ratio"] = out["rule_margin"] / top
    out["cosine"] = s.cosine
    out["covered"] = float(not s.coverage)
    out["absent"] = float(s.coverage == "absent")
    out["nowhere"] = float(s.nowhere)
    out["unrelated"] = float(s.coverage == "unrelated")
    out["no_answer_kind"] = float(s.coverage == "answer")
    return out


@dataclass(frozen=True)
class Model:
    """One fitted confidence: for answers judged by a reader, or by the rules alone."""

    features: tuple[str, ...]
    mean: tuple[float, ...]
    scale: tuple[float, ...]
    coef: tuple[float, ...]
    intercept: float
    threshold: float  # below this confidence, abstain
    candidates: int = 0  # how many of the best-ranked sentences the reader judges
    stop_at: float = 1.0  # stop judging after a candidate the reader gives this P(yes)
    rule_weight: float = 0.0  # choosing: logit(P(yes)) + rule_weight * rule score
    window: int = 300  # the characters of each candidate the reader is shown
    fitted: dict = field(default_factory=dict)  # what it was fitted on, and how it did
    label: str = "right"  # what it predicts: the quote is right, or the question unanswerable

    @property
    def reader(self) -> bool:
        return "reader_logit" in self.features

    def choose(self, p: tuple[float, ...], rule: tuple[float, ...]) -> int:
        """The candidate to quote: the reader's verdict and the rule score, combined. One
        within the reader's own noise of the best (READER_NOISE) is as good, and the rules'
        order, which the candidates come in, decides between them."""
        if not p:
            return 0
        score = [logit(p[i]) + self.rule_weight * rule[i] for i in range(len(p))]
        best = max(score)
        return next(i for i, x in enumerate(score) if x >= best - READER_NOISE)

    def confidence(self, s: Signals | None) -> float:
        """The fitted probability for `s` (a model without features gives its base rate)."""
        if not self.features:
            return 1.0 / (1.0 + math.exp(-self.intercept))
        assert s is not None
        x = features(s, self.reader)
        z = self.intercept + sum(
            c * (x[f] - m) / sc
            for f, m, sc, c in zip(self.features, self.mean, self.scale, self.coef, strict=True)
        )
        return 1.0 / (1.0 + math.exp(-max(-50.0, min(50.0, z))))


FRAME_CUT = math.inf  # before any fit has written a cut, no word is taken for a frame


def frame_cut(path: Path = PATH) -> float:
    """The Zipf frequency at and above which a question's word only frames it (fitted by
    `python -m bench.fit_confidence frames`; see rag.answering.answer_type.frames)."""
    if not path.exists():
        return FRAME_CUT
    return float(
        json.loads(path.read_text(encoding="utf-8")).get("frames", {}).get("zipf_cut", FRAME_CUT)
    )


@dataclass(frozen=True)
class Verdict:
    """What the fitted models conclude for one question."""

    outcome: str  # "answer", "not_sure" or "not_in_documents" (rag.types.Outcome)
    right: float  # P(the quoted passage answers the question)
    absent: float  # P(the documents do not answer it)


def decide(models: dict[str, Model], kind: str, s: Signals) -> Verdict:
    """The outcome for `s` by the `kind` models ("reader" or "rules"): an answer when P(right)
    reaches its fitted cut; else "the documents don't say" when P(absent) reaches its cut;
    else not sure."""
    right = models[kind].confidence(s)
    absent = models[f"{kind}_unanswerable"].confidence(s)
    if right >= models[kind].threshold:
        return Verdict("answer", right, absent)
    if absent >= models[f"{kind}_unanswerable"].threshold:
        return Verdict("not_in_documents", right, absent)
    return Verdict("not_sure", right, absent)


def load(path: Path = PATH, without: str | None = None) -> dict[str, Model]:
    """{"reader": Model, "rules": Model, "reader_unanswerable": Model, "rules_unanswerable":
    Model, "hard_unanswerable": Model}: P(the quote is right), and P(the documents do not
    answer the question), from the reader's signals or the rules' alone; and how often a
    question with nothing to judge (no statement found, no word to look for) is one the
    documents do not answer. {} before any fit (`python -m bench.fit_confidence`).

    `without` a genre: the models fitted without that genre's corpora ({} if none were), for
    measuring how the confidence does on a kind of text it never saw."""
    if not path.exists():
        return {}
    raw = json.loads(path.read_text(encoding="utf-8"))
    models = raw["models"] if without is None else raw.get("leave_one_genre_out", {}).get(without)
    if models is None:
        return {}
    return {
        k: Model(**{**v, **{f: tuple(v[f]) for f in ("features", "mean", "scale", "coef")}})
        for k, v in models.items()
    }
