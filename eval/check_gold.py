#!/usr/bin/env python3
"""Standalone checker for eval/gold.jsonl. Usage: python3 eval/check_gold.py [path]"""
import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PATH = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "eval", "gold.jsonl")
MIN_TOTAL, MIN_ANS, MIN_UNANS, MIN_FOLLOW = 44, 32, 10, 6
END_CHARS = ".!?”\"’"

errors = []
texts = {}


def err(qid, msg):
    errors.append(f"{qid}: {msg}")


def load(f):
    if f not in texts:
        texts[f] = open(os.path.join(ROOT, f), encoding="utf-8", newline="").read()
    return texts[f]


ids = set()
n_ans = n_unans = n_follow = n_total = 0
with open(PATH, encoding="utf-8") as fh:
    for lineno, line in enumerate(fh, 1):
        if not line.strip():
            err(f"line {lineno}", "blank line")
            continue
        try:
            q = json.loads(line)
        except json.JSONDecodeError as e:
            err(f"line {lineno}", f"JSON error: {e}")
            continue
        n_total += 1
        qid = q.get("id", f"line {lineno}")
        for k, typ in (("id", str), ("question", str), ("answerable", bool),
                       ("facts", list), ("gold", list), ("history", list)):
            if not isinstance(q.get(k), typ):
                err(qid, f"field {k!r} missing or not {typ.__name__}")
        if "note" in q and not isinstance(q["note"], str):
            err(qid, "note must be a string")
        if qid in ids:
            err(qid, "duplicate id")
        ids.add(qid)
        if not isinstance(q.get("history"), list) or not all(isinstance(h, str) and h.strip() for h in q.get("history", [])):
            err(qid, "history must be a list of non-empty strings")
        if q.get("history"):
            n_follow += 1
        facts, gold = q.get("facts") or [], q.get("gold") or []
        if q.get("answerable") is True:
            n_ans += 1
            if not facts:
                err(qid, "answerable but no facts")
            if not gold:
                err(qid, "answerable but no gold spans")
        elif q.get("answerable") is False:
            n_unans += 1
            if facts or gold:
                err(qid, "unanswerable must have empty facts and gold")
            continue
        gold_text = []
        for g in gold:
            f, s, e = g.get("file"), g.get("start"), g.get("end")
            if not (isinstance(f, str) and f.startswith("seeds/") and os.path.isfile(os.path.join(ROOT, f))):
                err(qid, f"bad gold file {f!r}")
                continue
            t = load(f)
            if not (isinstance(s, int) and isinstance(e, int) and 0 <= s < e <= len(t)):
                err(qid, f"span {s}-{e} out of range for {f} (len {len(t)})")
                continue
            span = t[s:e]
            if span.strip() != span:
                err(qid, f"span {f}:{s}-{e} has leading/trailing whitespace")
            # sentence boundary: start at file start or after whitespace following
            # a sentence terminator / newline; end on a terminator followed by
            # whitespace or EOF.
            before = t[:s]
            if s > 0 and not before[-1].isspace():
                err(qid, f"span {f}:{s} does not start at a word boundary")
            elif s > 0 and "\n" not in before[len(before.rstrip()):] and before.rstrip()[-1:] not in END_CHARS:
                err(qid, f"span {f}:{s} does not start at a sentence boundary")
            if span[-1] not in END_CHARS:
                err(qid, f"span {f}:{e} does not end with sentence punctuation: {span[-15:]!r}")
            if e < len(t) and not t[e].isspace():
                err(qid, f"span {f}:{e} not followed by whitespace/EOF")
            gold_text.append(span)
        joined = "\n".join(gold_text).lower()
        for fact in facts:
            if not (isinstance(fact, list) and fact and all(isinstance(a, str) and a for a in fact)):
                err(qid, f"malformed fact {fact!r}")
                continue
            if not any(a.lower() in joined for a in fact):
                err(qid, f"fact {fact!r} not found in gold text")

for name, n, lo in (("total", n_total, MIN_TOTAL), ("answerable", n_ans, MIN_ANS),
                    ("unanswerable", n_unans, MIN_UNANS), ("follow-up", n_follow, MIN_FOLLOW)):
    if n < lo:
        errors.append(f"too few {name}: {n} < {lo}")

print(f"total={n_total} answerable={n_ans} unanswerable={n_unans} follow-ups={n_follow}")
if errors:
    print("FAIL")
    for e in errors:
        print("  " + e)
    sys.exit(1)
print("OK")
