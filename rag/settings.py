"""Every knob in one frozen object: defaults here, then `RAG_*` variables, then CLI flags.

    >>> Settings.load(top_k=8).top_k
    8
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path

from .errors import InputError


@dataclass(frozen=True)
class Settings:
    index_dir: str = "index"  # where built indexes live (RAG_INDEX_DIR)
    uploads_dir: str = ""  # where the UI stores uploaded files; "" = <index_dir>/uploads
    embed_model: str = ""  # a local sentence-transformers folder; "" = bundled MiniLM
    gguf: str = ""  # a GGUF file; "" = bundled SmolLM2-135M-Instruct
    models_dir: str = "models"  # the UI offers every .gguf found here
    allow_model_switch: bool = False  # may UI users load another model for everyone? (rag serve)
    collection: str = ""  # a name for the indexed documents, for the UI and "don't say" answers
    llm_url: str = ""  # an OpenAI-compatible server (http://HOST:PORT/v1) instead of llama.cpp
    llm_timeout: float = 60.0
    chunk_size: int = 600  # characters per chunk, whole sentences
    chunk_overlap: int = 1  # sentences shared by neighbouring chunks
    retrieval: str = "hybrid"  # hybrid | dense | bm25
    top_k: int = 5  # chunks retrieved
    evidence_k: int = 3  # sentences offered to the model as numbered sources
    mode: str = "generate"  # generate | extractive
    n_threads: int = 0  # 0 = every core
    n_ctx: int = 2048
    max_tokens: int = 80
    temperature: float = 0.0
    max_question_chars: int = 2000
    max_upload_bytes: int = 10_000_000
    max_file_chars: int = 3_000_000  # text read from one file, about 1,500 pages
    max_upload_chars: int = 1_000_000  # text read from one file uploaded in the UI
    host: str = "127.0.0.1"
    port: int = 7860

    @classmethod
    def load(cls, env: dict[str, str] | None = None, **overrides) -> Settings:
        """Defaults, then a config file (`rag.toml` here, or the file named by RAG_CONFIG),
        then `RAG_<FIELD>` variables, then keyword arguments (CLI flags)."""
        env = os.environ if env is None else env
        values = _read_config(env.get("RAG_CONFIG", ""), {f.name for f in dataclasses.fields(cls)})
        for f in dataclasses.fields(cls):
            raw = env.get(f"RAG_{f.name.upper()}")
            if raw is not None and raw != "":
                values[f.name] = _coerce(f.name, f.type, raw)
        values.update({k: v for k, v in overrides.items() if v is not None})
        settings = cls(**values)
        settings.validate()
        return settings

    def validate(self) -> None:
        if self.retrieval not in ("hybrid", "dense", "bm25"):
            raise InputError(f"retrieval must be hybrid, dense or bm25, not {self.retrieval!r}")
        if self.mode not in ("generate", "extractive"):
            raise InputError(f"mode must be generate or extractive, not {self.mode!r}")
        if self.top_k < 1 or self.evidence_k < 1:
            raise InputError("top_k and evidence_k must be at least 1")
        if self.max_file_chars < 1 or self.max_upload_chars < 1:
            raise InputError("max_file_chars and max_upload_chars must be at least 1")
        if self.chunk_size < 50 or self.chunk_overlap < 0:
            raise InputError("chunk_size must be at least 50 and chunk_overlap at least 0")

    @property
    def threads(self) -> int:
        return self.n_threads or os.cpu_count() or 1

    @property
    def uploads_path(self) -> Path:
        return Path(self.uploads_dir) if self.uploads_dir else Path(self.index_dir) / "uploads"

    def replace(self, **changes) -> Settings:
        new = dataclasses.replace(self, **changes)
        new.validate()
        return new


def _read_config(path: str, names: set[str]) -> dict:
    """The [rag] table of a TOML file: `gguf = "models/qwen.gguf"`, `top_k = 8`, ..."""
    import tomllib

    file = Path(path) if path else Path("rag.toml")
    if not file.exists():
        if path:
            raise InputError(f"RAG_CONFIG={path}: no such file")
        return {}
    try:
        table = tomllib.loads(file.read_text(encoding="utf-8")).get("rag", {})
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise InputError(f"{file}: not valid TOML ({e}); fix or remove it") from None
    unknown = sorted(set(table) - names)
    if unknown:
        raise InputError(f"{file}: unknown settings {', '.join(unknown)}; see `rag ask --help`")
    return table


_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


def _coerce(name: str, type_name: str, raw: str):
    if type_name == "bool":
        if raw.strip().lower() in _TRUE + _FALSE:
            return raw.strip().lower() in _TRUE
        raise InputError(f"RAG_{name.upper()}={raw!r} must be 1 or 0 (true or false)")
    try:
        if type_name == "int":
            return int(raw)
        if type_name == "float":
            return float(raw)
    except ValueError:
        raise InputError(f"RAG_{name.upper()}={raw!r} is not a number") from None
    return raw
