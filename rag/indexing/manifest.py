"""The manifest: the file that says what an index is, written last by every save, read first
by every load. Here is what it holds, how it is read and checked, and the errors that say how
to rebuild an index that does not pass: format and version, embedding model and dimension,
chunker settings, the data files with a checksum each, a hash per document, and the folders
(and files) the index was built from.
"""

from __future__ import annotations

import contextlib
import json
import shlex
import time
from pathlib import Path

from ..errors import IndexCorrupt, IndexMismatch, IndexMissing, IndexProblem
from ..settings import Settings
from .index import Index, IndexConfig

FORMAT = "rag-index"
VERSION = 2  # 2: sentence vectors stored with the chunks
READABLE = (1, 2)  # a version-1 index is read without them, and rebuilt by the next `rag index`
DEFAULT_DIR = Path(Settings.index_dir)  # a hint for the default folder needs no --index-dir


def manifest_for(
    index: Index, generation: int, files: dict[str, str], checksums: dict[str, str]
) -> dict:
    """What a save of `index` as `generation`, in data `files` (kind -> name), writes."""
    counts = index.chunk_counts()
    return {
        "format": FORMAT,
        "version": VERSION,
        "generation": generation,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "embedding": {"model": index.config.embed_model, "dim": index.config.dim},
        "chunker": {
            "size": index.config.chunk_size,
            "overlap": index.config.chunk_overlap,
            "reading": index.config.reading,
        },
        "files": files,
        "checksums": checksums,
        "chunks": len(index.chunks),
        "roots": index.roots,
        "documents": {
            e.doc.doc_id: {
                "title": e.doc.title,
                "source": e.doc.source,
                "sha256": e.doc.sha256,
                "chunks": counts.get(e.doc.doc_id, 0),
                "duplicate_of": e.duplicate_of,
            }
            for e in index.docs.values()
        },
    }


def _show(path: str | Path) -> str:
    """A path as a person would type it here: relative below the working folder, with a
    slash after a folder, terminal escapes made visible."""
    from ..reading.ingest import printable

    p = Path(path)
    with contextlib.suppress(ValueError):
        p = p.relative_to(Path.cwd())
    return printable(str(p)) + ("/" if p.is_dir() else "")


def _dir_flag(directory: str | Path) -> str:
    """` --index-dir DIR`, or nothing for the default folder."""
    return "" if Path(directory) == DEFAULT_DIR else f" --index-dir {shlex.quote(str(directory))}"


def _command(directory: str | Path, args: str = "") -> str:
    return f"`rag index --rebuild{_dir_flag(directory)}{args}`"


def rebuild_hint(directory: str | Path, roots: list[str] | None) -> str:
    """What to run to rebuild the index in `directory`, naming what that reads again.

    >>> rebuild_hint("index", [])
    'run `rag index --rebuild FOLDER...` with every folder it held (it does not say which)'
    """
    if roots:
        names = [_show(r) for r in roots]
        if len(names) > 4:
            names = [*names[:3], f"{len(names) - 3} more"]
        listed = names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"
        return f"run {_command(directory)} to rebuild it from {listed}"
    return (
        f"run {_command(directory, ' FOLDER...')} with every folder it held (it does not say which)"
    )


def roots_of(manifest: dict) -> list[str]:
    """The folders and files an index was built from. Indexes saved before roots were
    recorded name their documents' files instead: a rebuild reads exactly those again."""
    roots = manifest.get("roots")
    if isinstance(roots, list) and all(isinstance(r, str) and r for r in roots):
        return roots
    docs = manifest.get("documents")
    if not isinstance(docs, dict):
        return []
    sources = {d.get("source") for d in docs.values() if isinstance(d, dict)}
    return sorted(str(Path(s).absolute()) for s in sources if isinstance(s, str) and s)


def unreadable(path: Path, directory: Path) -> IndexProblem:
    return IndexProblem(
        f"cannot read {path}: permission denied; the index's owner can share it with "
        f"`chmod -R a+rX {shlex.quote(str(directory))}`, or build your own with --index-dir"
    )


def read_manifest_bytes(directory: Path) -> bytes:
    path = directory / "manifest.json"
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise IndexMissing(
            f"no index at {directory}/: run `rag index seeds/{_dir_flag(directory)}` to index the bundled "
            "articles, or name your own folders"
        ) from None
    except PermissionError:
        raise unreadable(path, directory) from None
    except OSError as e:
        raise IndexCorrupt(
            f"{path} cannot be read ({e.strerror}): {rebuild_hint(directory, None)}"
        ) from None


def read_manifest(directory: str | Path) -> dict:
    return parse_manifest(Path(directory), read_manifest_bytes(Path(directory)))


def parse_manifest(directory: Path, raw: bytes) -> dict:
    path = directory / "manifest.json"
    try:
        manifest = json.loads(raw.decode("utf-8"))
    except (ValueError, UnicodeDecodeError):
        raise IndexCorrupt(f"{path} is not valid JSON: {rebuild_hint(directory, None)}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise IndexCorrupt(f"{path} is not a rag index manifest: {rebuild_hint(directory, None)}")
    if manifest.get("version") not in READABLE:
        raise IndexMismatch(
            f"{directory}/ has index format version {manifest.get('version')}, this rag reads "
            f"version {VERSION}: {rebuild_hint(directory, roots_of(manifest))}"
        )
    return manifest


def config_of(manifest: dict, hint: str) -> IndexConfig:
    try:
        return IndexConfig(
            embed_model=manifest["embedding"]["model"],
            dim=int(manifest["embedding"]["dim"]),
            chunk_size=int(manifest["chunker"]["size"]),
            chunk_overlap=int(manifest["chunker"]["overlap"]),
            reading=int(manifest["chunker"].get("reading", 1)),
        )
    except (KeyError, TypeError, ValueError):
        raise IndexCorrupt(f"the index manifest is incomplete: {hint}") from None


def check_config(found: IndexConfig, wanted: IndexConfig, directory: str | Path, hint: str) -> None:
    if found != wanted:
        names = {"reading": "the way text is read, version"}
        diffs = [
            f"{names.get(k, k)} {getattr(found, k)!r} (now {getattr(wanted, k)!r})"
            for k in ("embed_model", "dim", "chunk_size", "chunk_overlap", "reading")
            if getattr(found, k) != getattr(wanted, k)
        ]
        raise IndexMismatch(
            f"{directory}/ was built with {', '.join(diffs)}: {hint}, "
            "or use the settings it was built with"
        )


def data_files(manifest: dict, hint: str, version_1: bool = False) -> dict[str, str]:
    """The manifest's data files, which must be plain names inside the index folder."""
    files, sums = manifest.get("files"), manifest.get("checksums")
    keys = ("chunks", "vectors") if version_1 else ("chunks", "vectors", "sentences")
    names = [files.get(k) for k in keys] if isinstance(files, dict) else []
    plain = all(isinstance(n, str) and n and n == Path(n).name and n[0] != "." for n in names)
    if len(names) != len(keys) or not plain or not isinstance(sums, dict):
        raise IndexCorrupt(f"the index manifest is incomplete: {hint}")
    return dict(zip(keys, names, strict=True))
