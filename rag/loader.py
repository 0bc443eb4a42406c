"""Put a ready pipeline together from settings: the one place that loads models.

The reader and the generator share one llama.cpp model when they are the same file, so one
model is loaded (and its context holds the evaluated prompt for both)."""

from __future__ import annotations

import logging
from pathlib import Path

from .answering.pipeline import Pipeline
from .errors import ModelError
from .indexing.embed import load_embedder
from .indexing.indexer import load_index
from .llm.generate import Generator, LlamaCppGenerator
from .llm.reader import LlamaReader, Reader
from .settings import Settings

log = logging.getLogger(__name__)

DEFAULT_READER = "qwen2.5-coder-1.5b"  # the packaged reader docs/models.md's table chose


def reader_gguf(settings: Settings) -> str | None:
    """The GGUF file the reader loads; None for no local reader (none, or a server)."""
    from .llm import models  # not at import: `python -m rag.llm.models` runs it as __main__

    name = settings.reader
    if name in ("none", "server"):
        return None
    if name in models.PACKAGED:
        path = models.installed(models.PACKAGED[name], settings.models_dir)
        if path is None:
            raise ModelError(
                f"the reader {name} is not installed in {settings.models_dir}/: run "
                "`make models`, or pass --reader none to answer by the rules alone"
            )
        return str(path)
    if name:
        if not name.endswith(".gguf") and not Path(name).is_file():
            raise ModelError(
                f"--reader {name!r}: give none, server, a .gguf file, or one of "
                f"{', '.join(models.PACKAGED)}"
            )
        return name
    if settings.gguf:  # auto: the model the person chose reads too
        return settings.gguf
    if settings.llm_url:
        return None
    path = models.installed(models.PACKAGED[DEFAULT_READER], settings.models_dir)
    if path is None:
        log.warning(
            "the reader model is not installed (run `make models`); answering by the rules alone"
        )
        return None
    return str(path)


def check_models(settings: Settings) -> None:
    """A ModelError naming the fix when a model file the settings name is missing or not a
    GGUF; quick, so a server can say so before it loads them in the background."""
    from .llm.generate import resolve_gguf

    if settings.gguf and not settings.llm_url:
        resolve_gguf(settings.gguf)
    gguf = reader_gguf(settings)
    if gguf:
        resolve_gguf(gguf)


def writer_gguf(settings: Settings) -> str:
    """The GGUF file the generator loads (without loading it): --gguf, else the reader's
    model, else the bundled SmolLM2."""
    from .llm.generate import bundled_gguf_path

    return settings.gguf or (reader_gguf(settings) or "") or str(bundled_gguf_path())


def make_generator(settings: Settings, default_gguf: str = "") -> Generator:
    """The model that writes: the server, the --gguf file, else `default_gguf` (the reader's
    model, so one model is loaded), else the bundled SmolLM2."""
    if settings.llm_url:
        from .llm.openai_llm import OpenAIGenerator  # httpx, only for a server

        return OpenAIGenerator(
            settings.llm_url,
            settings.llm_model,
            timeout=settings.llm_timeout,
            context_tokens=settings.n_ctx,
            api_key=settings.llm_key,
        )
    return LlamaCppGenerator(
        settings.gguf or default_gguf, n_threads=settings.threads, n_ctx=settings.n_ctx
    )


def make_models(settings: Settings, with_llm: bool) -> tuple[Generator | None, Reader | None]:
    """The generator (when `with_llm`) and the reader, sharing one model when they can."""
    if settings.reader == "server" or (
        settings.reader == "" and settings.llm_url and not settings.gguf
    ):
        generator = make_generator(settings) if with_llm else None
        if not settings.llm_url:
            raise ModelError("--reader server needs --llm-url: the server to ask")
        from .llm.openai_llm import OpenAIGenerator, OpenAIReader

        server = (
            generator
            if isinstance(generator, OpenAIGenerator)
            else OpenAIGenerator(
                settings.llm_url,
                settings.llm_model,
                timeout=settings.llm_timeout,
                context_tokens=settings.n_ctx,
                api_key=settings.llm_key,
            )
        )
        return generator, OpenAIReader(server)
    gguf = reader_gguf(settings)
    generator = make_generator(settings, gguf or "") if with_llm else None
    if gguf is None:
        return generator, None
    if isinstance(generator, LlamaCppGenerator) and same_file(generator.path, gguf):
        return generator, LlamaReader(generator.llm, generator.lock, generator.name)
    return generator, LlamaReader.load(gguf, settings.threads, settings.n_ctx)


def same_file(a: str | Path, b: str | Path) -> bool:
    """Do the two paths name one file (through links and relative parts)?"""
    try:
        return Path(a).resolve() == Path(b).resolve()
    except OSError:
        return False


def open_pipeline(settings: Settings, with_llm: bool | None = None) -> Pipeline:
    """Embedder, saved index, the LLM (for generate mode, unless with_llm=False) and the reader."""
    embedder = load_embedder(settings.embed_model, settings.embed_backend)
    index = load_index(settings, embedder)
    want_llm = settings.mode == "generate" if with_llm is None else with_llm
    generator, reader = make_models(settings, want_llm)
    return Pipeline(settings, index, embedder, generator, reader)
