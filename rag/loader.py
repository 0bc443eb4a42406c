"""Put a ready pipeline together from settings: the one place that loads models."""

from __future__ import annotations

from .embed import load_embedder
from .generate import Generator, LlamaCppGenerator
from .indexer import load_index
from .pipeline import Pipeline
from .settings import Settings


def make_generator(settings: Settings) -> Generator:
    if settings.llm_url:
        from .openai_llm import OpenAIGenerator  # httpx, only for a server

        return OpenAIGenerator(settings.llm_url, settings.llm_model, timeout=settings.llm_timeout,
                               context_tokens=settings.n_ctx, api_key=settings.llm_key)
    return LlamaCppGenerator(settings.gguf, n_threads=settings.threads, n_ctx=settings.n_ctx)


def open_pipeline(settings: Settings, with_llm: bool | None = None) -> Pipeline:
    """Embedder, saved index and (for generate mode, unless with_llm=False) the LLM."""
    embedder = load_embedder(settings.embed_model, settings.embed_backend)
    index = load_index(settings, embedder)
    want_llm = settings.mode == "generate" if with_llm is None else with_llm
    return Pipeline(settings, index, embedder, make_generator(settings) if want_llm else None)
