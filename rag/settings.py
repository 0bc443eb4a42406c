"""Every knob in one frozen object: defaults here, then `rag.toml`, then `RAG_*` variables, then
CLI flags. Each field carries its own bounds; every value is checked against them here, as it
comes in, and a bad one is a one-line InputError naming the setting and where it came from:

    rag.toml: top_k = "8" must be a whole number
    RAG_TOP_K="x" must be a whole number
    --top-k 0 must be at least 1

    >>> Settings.load(env={}, top_k=8).top_k
    8
    >>> Settings.limits("top_k")  # what the UI's slider offers
    (1, 50)
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import InputError


def _knob(default, *, min=None, max=None, choices=(), flag=""):
    """A field's default, its inclusive bounds or allowed values, and its CLI flag when that is
    not `--<name-with-dashes>`."""
    return field(
        default=default, metadata={"min": min, "max": max, "choices": choices, "flag": flag}
    )


@dataclass(frozen=True)
class Settings:
    index_dir: str = "index"  # where built indexes live (RAG_INDEX_DIR)
    uploads_dir: str = ""  # where the UI stores uploaded files; "" = <index_dir>/uploads
    embed_model: str = ""  # a local sentence-transformers folder; "" = bundled MiniLM
    # how MiniLM runs: the same vectors on openvino, onnx and torch (int8 differs slightly);
    # "auto" = openvino-int8 on a CPU with int8 dot products (VNNI, AMX), else openvino
    embed_backend: str = _knob(
        "auto", choices=("auto", "openvino-int8", "openvino", "onnx-int8", "onnx", "torch")
    )
    gguf: str = ""  # a GGUF file; "" = the reader's model, else bundled SmolLM2-135M-Instruct
    # the model that judges whether a passage answers (rag.llm.reader): "" = the --gguf model if
    # one is given, else the packaged default once installed (`make models`); "none" = the
    # rules alone; a packaged name (rag.llm.models), a .gguf path, or "server" (--llm-url)
    reader: str = ""
    models_dir: str = "models"  # the UI offers every .gguf found here
    allow_model_switch: bool = False  # may UI users load another model for everyone? (rag serve)
    collection: str = ""  # a name for the indexed documents, for the UI and "don't say" answers
    llm_url: str = ""  # an OpenAI-compatible server (http://HOST:PORT/v1) instead of llama.cpp
    llm_timeout: float = _knob(60.0, min=1.0)  # seconds
    llm_model: str = ""  # the model that server answers with; "" = "default" (Ollama needs a name)
    # that server's API key, sent as a bearer token: from RAG_LLM_KEY or rag.toml (no flag, so
    # it stays out of the process list), and never printed
    llm_key: str = field(default="", repr=False)
    chunk_size: int = _knob(600, min=50)  # characters per chunk, whole sentences
    chunk_overlap: int = _knob(1, min=0)  # sentences shared by neighbouring chunks
    retrieval: str = _knob("hybrid", choices=("hybrid", "dense", "bm25"))
    top_k: int = _knob(5, min=1, max=50)  # chunks retrieved; the max bounds one request's work
    evidence_k: int = _knob(3, min=1)  # sentences offered to the model as numbered sources
    mode: str = _knob("generate", choices=("generate", "extractive"))
    n_threads: int = _knob(0, min=0, flag="--threads")  # 0 = every core
    n_ctx: int = _knob(2048, min=512)  # the prompt budget is n_ctx less max_tokens and more
    max_tokens: int = _knob(80, min=1)
    # seconds an answer may wait for the one model (the reader's verdict, then the rewrite)
    # behind other people's questions; a longer wait is skipped and the first answer stands
    max_wait: float = _knob(5.0, min=0.0)
    temperature: float = _knob(0.0, min=0.0, max=2.0)
    max_question_chars: int = _knob(2000, min=1)
    max_upload_bytes: int = _knob(10_000_000, min=1)
    max_file_chars: int = _knob(3_000_000, min=1)  # text read from one file, about 1,500 pages
    max_upload_chars: int = _knob(1_000_000, min=1)  # text read from one file uploaded in the UI
    host: str = "127.0.0.1"
    port: int = _knob(7860, min=1, max=65535)

    def __post_init__(self) -> None:
        """Values set in code (`Settings(...)`, `.replace(...)`) are checked like the others."""
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            checked = _check(f, value, f"{f.name} = {_show(value)}")
            if type(checked) is not type(value):  # a whole number given for a float
                object.__setattr__(self, f.name, checked)

    @classmethod
    def load(cls, env: dict[str, str] | None = None, **overrides) -> Settings:
        """Defaults, then a config file (`rag.toml` here, or the file named by RAG_CONFIG),
        then `RAG_<FIELD>` variables, then keyword arguments (CLI flags, as text or typed).
        An empty variable or a None argument is not given."""
        env = os.environ if env is None else env
        fields = {f.name: f for f in dataclasses.fields(cls)}
        values: dict[str, Any] = {}
        file, table = _read_config(env.get("RAG_CONFIG", ""), set(fields))
        for name, value in table.items():
            values[name] = _check(fields[name], value, f"{file}: {name} = {_show(value)}")
        for f in fields.values():
            raw = env.get(f"RAG_{f.name.upper()}")
            if raw:
                values[f.name] = _check(f, raw, f"RAG_{f.name.upper()}={_show(raw)}", text=True)
        for name, value in overrides.items():
            if name not in fields:
                raise TypeError(f"Settings has no field {name!r}")
            if value is not None:
                f = fields[name]
                flag = f.metadata.get("flag") or "--" + name.replace("_", "-")
                shown = (
                    value if isinstance(value, str) and _PLAIN.fullmatch(value) else _show(value)
                )
                values[name] = _check(f, value, f"{flag} {shown}", text=isinstance(value, str))
        return cls(**values)

    @classmethod
    def limits(cls, name: str) -> tuple[Any, Any]:
        """A field's (min, max), either None where it has no bound: `limits("top_k") == (1, 50)`."""
        meta = _field_named(cls, name).metadata
        return meta.get("min"), meta.get("max")

    @classmethod
    def choices(cls, name: str) -> tuple[str, ...]:
        """The values a field may take, or () if it is not a choice."""
        return _field_named(cls, name).metadata.get("choices", ())

    @property
    def threads(self) -> int:
        return self.n_threads or os.cpu_count() or 1

    @property
    def uploads_path(self) -> Path:
        return Path(self.uploads_dir) if self.uploads_dir else Path(self.index_dir) / "uploads"

    def replace(self, **changes) -> Settings:
        return dataclasses.replace(self, **changes)


def _field_named(cls, name: str) -> dataclasses.Field:
    for f in dataclasses.fields(cls):
        if f.name == name:
            return f
    raise KeyError(f"Settings has no field {name!r}")


def _read_config(path: str, names: set[str]) -> tuple[str, dict]:
    """The file's name and its [rag] table: `gguf = "models/qwen.gguf"`, `top_k = 8`, ..."""
    import tomllib

    file = Path(path) if path else Path("rag.toml")
    if not file.exists():
        if path:
            raise InputError(f"RAG_CONFIG={path}: no such file")
        return str(file), {}
    try:
        table = tomllib.loads(file.read_text(encoding="utf-8")).get("rag", {})
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise InputError(f"{file}: not valid TOML ({e}); fix or remove it") from None
    if not isinstance(table, dict):
        raise InputError(f"{file}: rag must be a table, [rag], with one setting a line")
    unknown = sorted(set(table) - names)
    if unknown:
        raise InputError(f"{file}: unknown settings {', '.join(unknown)}; see `rag ask --help`")
    return str(file), table


_KINDS = {"int": "a whole number", "float": "a number", "bool": "true or false", "str": "text"}
_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")
_PLAIN = re.compile(r"[\w.:/+-]{1,60}")  # a flag's value shown as typed, without quotes


def _check(f: dataclasses.Field, value, where: str, text: bool = False):
    """`value` as field `f` holds it, or an InputError that starts with `where`. Text (from a
    variable or a flag) is parsed; anything else must already have the field's type, so that
    `top_k = "8"` in a TOML file is caught as the mistake it is."""
    kind = f.type
    try:
        value = _parse(kind, value) if text else value
    except ValueError:
        words = "1 or 0 (true or false)" if kind == "bool" else _KINDS[kind]
        raise InputError(f"{where} must be {words}") from None
    if kind == "float" and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    ok = {
        "int": isinstance(value, int) and not isinstance(value, bool),
        "float": isinstance(value, float) and math.isfinite(value),
        "bool": isinstance(value, bool),
        "str": isinstance(value, str),
    }[kind]
    if not ok:
        raise InputError(f"{where} must be {_KINDS[kind]}")
    meta = f.metadata
    if meta.get("choices") and value not in meta["choices"]:
        *first, last = meta["choices"]
        raise InputError(f"{where} must be {', '.join(first)} or {last}")
    if meta.get("min") is not None and value < meta["min"]:
        raise InputError(f"{where} must be at least {meta['min']}")
    if meta.get("max") is not None and value > meta["max"]:
        raise InputError(f"{where} must be at most {meta['max']}")
    return value


def _parse(kind: str, raw: str):
    """Text from a variable or a flag, read as a field of `kind`; ValueError if it is not one."""
    if kind == "int":
        return int(raw)
    if kind == "float":
        return float(raw)
    if kind == "bool":
        word = raw.strip().lower()
        if word not in _TRUE + _FALSE:
            raise ValueError(raw)
        return word in _TRUE
    return raw


def _show(value) -> str:
    """A value on one short line, written as in rag.toml: "8" for text, 8 for a number."""
    if isinstance(value, bool):
        shown = "true" if value else "false"
    elif isinstance(value, str):
        shown = json.dumps(value, ensure_ascii=False)
    else:
        shown = repr(value)
    return shown if len(shown) <= 60 else shown[:57] + "..."
