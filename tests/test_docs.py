"""The README and docs/ stay readable and true: short pages, links that resolve, and commands
that the real parsers take.

Nothing here loads a model or touches the network: a `rag ...` line is only parsed, by
`rag.cli.build_parser()`; a `python -m MODULE ...` or `python scripts/X.py ...` line is parsed by
that program's own parser, stopped right after parsing (every such `main` builds its parser and
parses first); a `make TARGET` line must name a target of the Makefile.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import importlib.util
import io
import re
import shlex
import sys
from pathlib import Path

import pytest

from rag.cli import build_parser

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DOCS = ROOT / "docs"
PAGES = [README, *sorted(DOCS.glob("*.md"))]
MAX_LINES = {README: 150}  # every docs page: 300
FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})\s*([\w+-]*)")
HEADING = re.compile(r"^ {0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
HTML_LINK = re.compile(r"""\b(?:href|src)\s*=\s*["']([^"']+)["']""")
FIGURES = re.compile(r"<!--\s*figures:\s*(\S+)\s*-->")
CODE_SPAN = re.compile(r"(`+)(?:(?!\1).)+?\1")
SCHEME = re.compile(r"^(?:[a-zA-Z][a-zA-Z0-9+.-]*:|//)")
ENV = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
SHELL_VAR = re.compile(r"^\$(?:[!$?#@*0-9]|\{?[A-Za-z_][A-Za-z0-9_]*\}?)$")
RAG = {"rag", ".venv/bin/rag"}
PYTHON = {"python", "python3", ".venv/bin/python", ".venv/bin/python3"}
WRAPPERS = {"scripts/run-offline"}  # run the rest of the line; checked as its own command


def rel(path: Path) -> str:
    return str(path.relative_to(ROOT))


def split_page(path: Path) -> tuple[list[tuple[int, str]], list[tuple[int, str]]]:
    """The page's prose lines and the lines inside its fenced code blocks, with line numbers."""
    prose, code, fence = [], [], None
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        m = FENCE.match(line)
        if fence is None and m:
            fence = m.group(1)
        elif (
            fence is not None and m and m.group(1)[0] == fence[0] and len(m.group(1)) >= len(fence)
        ):
            fence = None
        elif fence is None:
            prose.append((n, line))
        else:
            code.append((n, line))
    return prose, code


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"<[^>]+>", "", heading)
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", text)  # a link reads as its text
    text = re.sub(r"[^\w\- ]", "", text.strip().lower())
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    seen: dict[str, int] = {}
    out = set()
    for _, line in split_page(path)[0]:
        m = HEADING.match(line)
        if m:
            base = slug(m.group(2))
            count = seen.get(base, 0)
            seen[base] = count + 1
            out.add(base if count == 0 else f"{base}-{count}")
    return out


def links(path: Path) -> list[tuple[int, str]]:
    out = []
    for n, line in split_page(path)[0]:
        out += [(n, m.group(1)) for m in FIGURES.finditer(line)]
        line = CODE_SPAN.sub("", line)
        out += [(n, m.group(1)) for m in LINK.finditer(line)]
        out += [(n, m.group(1)) for m in HTML_LINK.finditer(line)]
    return [(n, target) for n, target in out if not SCHEME.match(target)]


def shell_lines(path: Path) -> list[tuple[int, str]]:
    """Every line of the page's fenced code blocks, `\\`-continued lines joined."""
    out, pending, start = [], "", 0
    for n, line in split_page(path)[1]:
        if not pending:
            start = n
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        out.append((start, pending + line))
        pending = ""
    return out


def commands(line: str) -> list[list[str]] | None:
    """The simple commands of one shell line (split at `&&`, `||`, `;` and `&`), each without
    its leading VAR=value assignments and wrappers; None for a line with a pipe, a redirection,
    parentheses or a command substitution, which is left unchecked."""
    line = line.strip()
    if line.startswith("$ "):
        line = line[2:]
    if "$(" in line:
        return None
    lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True  # comments (`# ...`) are dropped by the lexer
    try:
        tokens = list(lexer)
    except ValueError:  # not shell (an unmatched quote in prose or output)
        return []
    out, argv = [], []
    for token in tokens:
        if token and set(token) <= set("();<>|&"):
            if "|" in token and token != "||" or set(token) & set("<>()"):
                return None  # a pipe, a redirection, a subshell, or not shell at all
            if argv:
                out.append(argv)
            argv = []
        else:
            argv.append("1" if SHELL_VAR.match(token) else token)  # $! or $VAR: a value
    if argv:
        out.append(argv)
    for argv in out:
        while argv and (ENV.match(argv[0]) or argv[0] in WRAPPERS):
            argv.pop(0)
    return [argv for argv in out if argv]


def page_commands(kind: str) -> list:
    params = []
    for page in PAGES:
        for n, line in shell_lines(page):
            for argv in commands(line) or []:
                if kind == "rag" and argv[0] in RAG:
                    params.append(pytest.param(argv, id=f"{rel(page)}:{n}"))
                elif kind == "python" and argv[0] in PYTHON and len(argv) > 1:
                    params.append(pytest.param(argv, id=f"{rel(page)}:{n}"))
                elif kind == "make" and argv[0] == "make":
                    params.append(pytest.param(argv, id=f"{rel(page)}:{n}"))
    return params


@pytest.mark.parametrize("page", PAGES, ids=rel)
def test_pages_are_short(page):
    lines = len(page.read_text(encoding="utf-8").splitlines())
    assert lines <= MAX_LINES.get(page, 300), f"{rel(page)} has {lines} lines"


@pytest.mark.parametrize("page", PAGES, ids=rel)
def test_relative_links_resolve(page):
    problems = []
    for n, target in links(page):
        file, _, anchor = target.partition("#")
        dest = (page.parent / file).resolve() if file else page
        if not dest.exists():
            problems.append(f"{rel(page)}:{n}: {target}: no such file")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            problems.append(f"{rel(page)}:{n}: {target}: no heading #{anchor} in {rel(dest)}")
    assert not problems, "\n".join(problems)


def test_the_readme_links_every_docs_page_and_marks_its_figures():
    targets = {(README.parent / t.partition("#")[0]).resolve() for _, t in links(README)}
    missing = [rel(p) for p in PAGES[1:] if p.resolve() not in targets]
    assert not missing, f"README.md does not link {missing}"
    assert FIGURES.search(README.read_text(encoding="utf-8")), "the figures comment is gone"


def test_the_anchor_slugs_are_githubs():
    assert (
        slug("Choosing the reader: `rag eval --reader`") == "choosing-the-reader-rag-eval---reader"
    )
    assert slug("Offline, and how to check it") == "offline-and-how-to-check-it"
    assert commands("rag ask x | head") is None
    assert commands("when indexing (rag index)") is None
    assert commands("A=1 scripts/run-offline .venv/bin/rag ask 'q'  # c") == [
        [".venv/bin/rag", "ask", "q"]
    ]


RAG_COMMANDS = page_commands("rag")


def test_the_pages_show_rag_commands():
    assert len(RAG_COMMANDS) >= 10  # the parser check below is not vacuous
    assert {"eval", "bench"} <= set(build_parser()._subparsers._group_actions[0].choices)


@pytest.fixture(scope="module")
def parser():
    return build_parser()


@pytest.mark.parametrize("argv", RAG_COMMANDS)
def test_rag_commands_parse(parser, argv):
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            parser.parse_args(argv[1:])
        except SystemExit as e:
            assert e.code == 0, f"{shlex.join(argv)}: {err.getvalue().strip()}"


class _Parsed(Exception):
    pass


def _program(argv: list[str]):
    """The `main` of `python -m MODULE` or `python path/to/script.py`, and its arguments."""
    if argv[1] == "-m":
        return importlib.import_module(argv[2]).main, argv[3:]
    script = ROOT / argv[1]
    assert script.exists(), f"{argv[1]}: no such file"
    spec = importlib.util.spec_from_file_location(f"_docs_{script.stem}", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main, argv[2:]


@pytest.mark.parametrize("argv", page_commands("python"))
def test_python_commands_parse(argv, monkeypatch):
    main, args = _program(argv)
    original = argparse.ArgumentParser.parse_args

    def parse_then_stop(self, a=None, namespace=None):
        original(self, a, namespace)
        raise _Parsed

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", parse_then_stop)
    monkeypatch.setattr(sys, "argv", [argv[1], *args])
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            main(args) if main.__code__.co_argcount else main()
        except _Parsed:
            return
        except SystemExit as e:
            assert e.code == 0, f"{shlex.join(argv)}: {err.getvalue().strip()}"
            return
    pytest.fail(f"{shlex.join(argv)}: main() returned without parsing its arguments")


@pytest.mark.parametrize("argv", page_commands("make"))
def test_make_targets_exist(argv):
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    targets = set(re.findall(r"^([\w.-]+)\s*:(?!=)", makefile, flags=re.M))
    for target in (a for a in argv[1:] if not a.startswith("-") and "=" not in a):
        assert target in targets, f"make {target}: no such target in the Makefile"
