"""The benchmark's corpora: real documents nobody on the team wrote, with questions written
from them.

    eval/corpora/<name>/corpus.json      where each file comes from (a Debian package path),
                                         its license, and whether the corpus is sealed
    eval/corpora/<name>/questions.jsonl  one question per line (format below)
    eval/corpora/<name>/docs/            the files, copied by `fetch` (not committed)

A question line:

    {"id": "gpl3-07", "question": "...", "answerable": true,
     "facts": [["14 days", "fourteen days"], ["cure"]],     # every group: one of its words
     "passages": [{"file": "GPL-3.txt", "quote": "exact words of the supporting passage"}],
     "history": [], "note": "why it is (un)answerable"}

A quote is located in the document's text as the engine reads it (for HTML and PDF, the
extracted text), ignoring whitespace, so it survives a re-wrapped line or a changed extractor.

A file entry names where its text comes from: `"from"`, a path a Debian package installs (a
`.gz` is unpacked), or `"man"`, a manual page rendered as a person exports one to text,
`MANWIDTH=80 man -P cat <section> <page> | col -bx` (hard-wrapped, with indented definition
lists); or `"github": "owner/name"` with `"commit"` and `"path"`, a file of a public repository
as the session's `fetch` tool brings it into $RAG_MIRRORS (default /work/.mirror); such files
are never committed, only where they come from. A repository that keeps its texts inside a
JSON (or JSON Lines) file names the text by `"json"`, the keys and indexes down to it
(for JSON Lines, the line's index first): `"json": [12, "text"]`; one that keeps them as rows
of a CSV file names the row and the columns, joined by a blank line:
`"csv": [3, "title", "text"]`.

Every corpus names its `"genre"` (news, encyclopedic, faq, report, legal, manual): the
confidence is fitted and reported leaving one genre out in turn, because a fit on one kind of
text does not carry to another.

    python -m bench.corpora fetch            # copy every corpus's files from its packages
    python -m bench.corpora show r-faq       # print the text the engine reads, per file
    python -m bench.corpora check            # validate every questions.jsonl
"""

from __future__ import annotations

import argparse
import gzip
import json
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CORPORA = ROOT / "eval" / "corpora"
MIN_QUESTIONS, MIN_UNANSWERABLE_SHARE = 60, 0.30
GENRES = ("news", "encyclopedic", "faq", "report", "legal", "manual")


@dataclass(frozen=True)
class Question:
    id: str
    corpus: str
    question: str
    answerable: bool
    facts: list[list[str]]
    passages: list[tuple[str, str]]  # (path of the file, quote)
    history: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Corpus:
    name: str
    kind: str
    source: str
    license: str
    folder: Path  # where its documents are
    files: list[dict]
    sealed: bool  # never used to fit the engine's weights or thresholds
    fitted: bool = False  # the engine's rules and thresholds were tuned on it
    genre: str = ""  # the kind of text (GENRES): fits are judged leaving one genre out

    @property
    def paths(self) -> list[Path]:
        return [self.folder / f["file"] for f in self.files]

    @property
    def questions_file(self) -> Path:
        return CORPORA / self.name / "questions.jsonl"

    def questions(self) -> list[Question]:
        out = []
        for line in self.questions_file.read_text(encoding="utf-8").splitlines():
            if not line.strip():
                continue
            row = json.loads(line)
            out.append(
                Question(
                    row["id"],
                    self.name,
                    row["question"],
                    row["answerable"],
                    row.get("facts", []),
                    [(str(self.folder / p["file"]), p["quote"]) for p in row.get("passages", [])],
                    row.get("history", []),
                )
            )
        return out


def corpus(name: str) -> Corpus:
    if not (CORPORA / name / "corpus.json").is_file():
        from rag.errors import InputError

        known = ", ".join(p.parent.name for p in sorted(CORPORA.glob("*/corpus.json")))
        raise InputError(f"no benchmark corpus {name!r}; choose from {known}")
    meta = json.loads((CORPORA / name / "corpus.json").read_text(encoding="utf-8"))
    folder = ROOT / meta["root"] if "root" in meta else CORPORA / name / "docs"
    return Corpus(
        meta["name"],
        meta["kind"],
        meta["source"],
        meta["license"],
        folder,
        meta["files"],
        bool(meta.get("sealed", False)),
        bool(meta.get("fitted", False)),
        meta.get("genre", ""),
    )


def all_corpora() -> list[Corpus]:
    return [corpus(p.parent.name) for p in sorted(CORPORA.glob("*/corpus.json"))]


def fetch(c: Corpus) -> list[str]:
    """Copy the corpus's files from the packages that ship them; returns what is missing."""
    missing = []
    for f in c.files:
        if "man" in f:
            text = render_man(f["man"])
            if text is None:
                missing.append(f"man page {f['man']} (apt-get install {f.get('package', '?')})")
            else:
                dest = c.folder / f["file"]
                dest.parent.mkdir(parents=True, exist_ok=True)
                dest.write_text(text, encoding="utf-8")
            continue
        if "github" in f:
            if not _from_github(f, c.folder / f["file"]):
                missing.append(
                    f"github:{f['github']} at {f['commit'][:12]} (bring it with the "
                    "session's fetch tool)"
                )
            continue
        if "from" not in f:
            continue
        src, dest = Path(f["from"]), c.folder / f["file"]
        if not src.exists():
            missing.append(f"{src} (apt-get install {f.get('package', '?')})")
            continue
        dest.parent.mkdir(parents=True, exist_ok=True)
        if src.suffix == ".gz":
            dest.write_bytes(gzip.decompress(src.read_bytes()))
        else:
            shutil.copyfile(src, dest)
    return missing


def mirrors() -> Path:
    import os

    return Path(os.environ.get("RAG_MIRRORS", "/work/.mirror"))


def _from_github(f: dict, dest: Path) -> bool:
    """Copy `f["path"]` at `f["commit"]` from the local snapshot of `f["github"]`."""
    import subprocess

    git_dir = mirrors() / f["github"].replace("/", "+") / "repo"
    try:
        data = subprocess.run(
            ["git", "--git-dir", str(git_dir), "show", f"{f['commit']}:{f['path']}"],
            capture_output=True,
            check=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return False
    if "json" in f:
        data = _json_text(data.decode("utf-8"), f["path"], f["json"]).encode("utf-8")
    elif "csv" in f:
        data = _csv_text(data.decode("utf-8"), f["csv"]).encode("utf-8")
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_bytes(data)
    return True


def _csv_text(raw: str, where: list) -> str:
    """The columns `where[1:]` of row `where[0]` (counted after the header), a blank line apart."""
    import csv
    import io

    row = list(csv.DictReader(io.StringIO(raw)))[where[0]]
    return "\n\n".join(row[c].strip() for c in where[1:]) + "\n"


def _json_text(raw: str, path: str, keys: list) -> str:
    """The text at `keys` inside a JSON file (or a JSON Lines file: the line's index first)."""
    if path.endswith((".jsonl", ".ndjson")):
        lines = [x for x in raw.splitlines() if x.strip()]
        value = json.loads(lines[keys[0]])
        keys = keys[1:]
    else:
        value = json.loads(raw)
    for k in keys:
        value = value[k]
    return value if value.endswith("\n") else value + "\n"


def render_man(page: str) -> str | None:
    """A manual page ("5 adduser.conf") as plain text, 80 columns wide: what
    `MANWIDTH=80 man -P cat 5 adduser.conf | col -bx` prints; None if it is not installed."""
    import os
    import subprocess

    env = {**os.environ, "MANWIDTH": "80", "LC_ALL": "C.UTF-8"}
    try:
        shown = subprocess.run(
            ["man", "-P", "cat", *page.split()], env=env, capture_output=True, check=True
        ).stdout
        plain = subprocess.run(
            ["col", "-bx"], input=shown, env=env, capture_output=True, check=True
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    return plain.decode("utf-8")


_SKIP = "-\u00ad\u2010"  # hyphens: a PDF reader may join "rec- ommended" into one word


def squeeze(text: str) -> tuple[str, list[int]]:
    """`text` without whitespace or hyphens, and the position in `text` of each character kept."""
    kept = [(i, ch) for i, ch in enumerate(text) if not ch.isspace() and ch not in _SKIP]
    return "".join(ch for _, ch in kept), [i for i, _ in kept]


def locate(text: str, quote: str) -> list[tuple[int, int]]:
    """Every (start, end) in `text` whose characters are `quote`'s, whitespace and hyphens aside."""
    hay, where = squeeze(text)
    needle, _ = squeeze(quote)
    if not needle:
        return []
    out, at = [], hay.find(needle)
    while at >= 0:
        out.append((where[at], where[at + len(needle) - 1] + 1))
        at = hay.find(needle, at + 1)
    return out


def document_text(path: Path) -> str:
    from rag.reading.ingest import read_text

    return read_text(path)


def check(c: Corpus) -> list[str]:
    """Problems with a corpus's questions, one line each."""
    problems: list[str] = []
    if not c.questions_file.exists():
        return [f"{c.name}: no questions.jsonl"]
    texts = {}
    for p in c.paths:
        try:
            texts[str(p)] = document_text(p)
        except Exception as e:  # noqa: BLE001 - reported, not raised
            problems.append(f"{c.name}: {p.name}: {e} (run `python -m bench.corpora fetch`)")
    if problems:
        return problems
    seen = set()
    qs = c.questions()
    for q in qs:
        if q.id in seen:
            problems.append(f"{q.id}: duplicate id")
        seen.add(q.id)
        if not q.question.strip():
            problems.append(f"{q.id}: empty question")
        if q.answerable:
            if not q.facts or not all(isinstance(g, list) and g for g in q.facts):
                problems.append(f"{q.id}: an answerable question needs facts")
            if not q.passages:
                problems.append(f"{q.id}: an answerable question needs a passage")
        elif q.facts or q.passages:
            problems.append(f"{q.id}: an unanswerable question has no facts or passages")
        for path, quote in q.passages:
            if path not in texts:
                problems.append(f"{q.id}: {Path(path).name} is not a file of the corpus")
                continue
            found = locate(texts[path], quote)
            if len(found) != 1:
                problems.append(f"{q.id}: quote found {len(found)} times: {quote[:60]!r}")
        if q.answerable and q.passages:
            joined = " ".join(" ".join(qt.split()).lower() for _, qt in q.passages)
            for group in q.facts:
                if not any(" ".join(f.split()).lower() in joined for f in group):
                    problems.append(f"{q.id}: no word of {group} is in its passages")
    n = len(qs)
    unanswerable = sum(not q.answerable for q in qs)
    if not c.sealed and c.name != "news" and n < MIN_QUESTIONS:
        problems.append(f"{c.name}: {n} questions, fewer than {MIN_QUESTIONS}")
    if c.genre not in GENRES:
        problems.append(f"{c.name}: genre {c.genre!r} is not one of {', '.join(GENRES)}")
    if n and c.name != "news" and unanswerable / n < MIN_UNANSWERABLE_SHARE:
        problems.append(f"{c.name}: {unanswerable}/{n} unanswerable, under 30%")
    return problems


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.corpora", description=__doc__.splitlines()[0])
    p.add_argument("action", choices=["fetch", "show", "check", "list"])
    p.add_argument("names", nargs="*", help="corpora (default: all)")
    args = p.parse_args(argv)
    chosen = [corpus(n) for n in args.names] if args.names else all_corpora()
    status = 0
    for c in chosen:
        if args.action == "fetch":
            for m in fetch(c):
                print(f"{c.name}: missing {m}", file=sys.stderr)
                status = 1
        elif args.action == "show":
            for path in c.paths:
                print(f"===== {path.name} =====")
                print(document_text(path))
        elif args.action == "check":
            problems = check(c)
            for line in problems:
                print(line)
            status |= bool(problems)
            if not problems:
                qs = c.questions()
                print(
                    f"{c.name}: ok, {len(qs)} questions, {sum(not q.answerable for q in qs)} unanswerable"
                )
        else:
            print(f"{c.name}: {c.kind}; {len(c.files)} files; {c.source}")
    return status


if __name__ == "__main__":
    raise SystemExit(main())
