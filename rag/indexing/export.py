"""The bundled sentence-transformers model exported to ONNX, once, into a cache folder
($RAG_CACHE_DIR, else ~/.cache/rag): the files the fast embedding backends in `rag.indexing.embed` run.
Nothing is downloaded: the export is traced from the model's own folder."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from pathlib import Path

from ..errors import ModelError

log = logging.getLogger(__name__)

_EXPORT_VERSION = 3  # bump when the exported graph changes, so caches are rebuilt


def default_cache_dir() -> Path:
    """Where exported models are kept: $RAG_CACHE_DIR, else $XDG_CACHE_HOME/rag, else ~/.cache/rag."""
    if os.environ.get("RAG_CACHE_DIR"):
        return Path(os.environ["RAG_CACHE_DIR"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "rag"


# each file and the one it is made from
_MADE_FROM = {
    "model.onnx": None,
    "model-fp32.onnx": "model.onnx",
    "model-int8.onnx": "model-fp32.onnx",
    "openvino-int8.xml": "model.onnx",
}


def _steps(file: str) -> list[str]:
    """The files `file` is made from, first to last, ending with `file`."""
    chain = [file]
    while _MADE_FROM[chain[-1]]:
        chain.append(_MADE_FROM[chain[-1]])
    return chain[::-1]


def export_onnx(path: Path, name: str, file: str = "model.onnx", cache_dir=None) -> Path:
    """The model in `path` exported on first use into the cache: model.onnx (float32, as
    traced), model-fp32.onnx (onnxruntime's fused attention, layer norms and GELU),
    model-int8.onnx (the fused graph, weights in int8) or openvino-int8.xml (the traced graph
    quantized to int8 by OpenVINO's NNCF); only the steps `file` needs.

    The folder is named after a hash of the model's files and the exporter's version, so a
    changed model gets a fresh export; each file is written under a temporary name and renamed
    into place, so two processes exporting at once never read a half-written file.
    """
    _check_exportable(path)
    folder = Path(cache_dir or default_cache_dir()) / "embedders" / _export_key(path, name)
    if _complete(folder / file):
        return folder / file
    if file == "openvino-int8.xml":
        calibration_texts(path)  # no card to calibrate on: say so now, before any work
    log.warning("exporting the embedding model %s to %s once, into %s", name, file, folder)
    folder.mkdir(parents=True, exist_ok=True)
    for step in _steps(file):
        if _complete(folder / step):
            continue
        with tempfile.TemporaryDirectory(dir=folder, prefix=".export-") as tmp:
            try:
                _export_step(path, folder, step, Path(tmp) / step)
            except ModelError:
                raise
            except (
                Exception
            ) as e:  # torch's exporter, onnxruntime's and NNCF's tools raise many kinds
                raise ModelError(
                    f"cannot export {path} to {step}: {type(e).__name__}: {e}"
                ) from None
            weights = (Path(tmp) / step).with_suffix(".bin")  # an OpenVINO file's weights
            if weights.is_file():
                os.replace(weights, (folder / step).with_suffix(".bin"))
            os.replace(Path(tmp) / step, folder / step)  # last: its presence means complete
    return folder / file


def _complete(file: Path) -> bool:
    """An exported file is there, with its weights if it is OpenVINO's (.xml + .bin)."""
    return file.is_file() and (file.suffix != ".xml" or file.with_suffix(".bin").is_file())


def _check_exportable(path: Path) -> None:
    """Only the shapes this exporter reproduces: a BERT-like transformer, mean pooling."""
    modules_file = path / "modules.json"
    if not (path / "tokenizer.json").is_file() or not modules_file.is_file():
        raise ModelError(f"{path} has no tokenizer.json or modules.json to export from")
    listed = json.loads(modules_file.read_text())
    modules = [m["type"].rsplit(".", 1)[-1] for m in listed]
    if modules not in (["Transformer", "Pooling", "Normalize"], ["Transformer", "Pooling"]):
        raise ModelError(f"{path}: modules {modules} are not transformer + mean pooling")
    pooling = next(m for m in listed if m["type"].endswith("Pooling"))
    modes = json.loads((path / pooling["path"] / "config.json").read_text())
    used = sorted(k for k, v in modes.items() if k.startswith("pooling_mode") and v is True)
    if used != ["pooling_mode_mean_tokens"]:
        raise ModelError(f"{path}: pooling {used} is not mean pooling")


def _export_key(path: Path, name: str) -> str:
    from importlib import metadata

    tools = []
    for tool in ("onnxruntime", "openvino", "nncf"):  # a new version may write another file
        try:
            tools.append(f"{tool} {metadata.version(tool)}")
        except metadata.PackageNotFoundError:
            tools.append(f"{tool} -")
    h = hashlib.sha256(f"{_EXPORT_VERSION} {' '.join(tools)}".encode())
    for f in sorted(path.rglob("*")):
        if f.is_file() and f.suffix in (".json", ".safetensors", ".bin", ".txt", ".md"):
            st = f.stat()
            h.update(f"{f.relative_to(path)} {st.st_size} {st.st_mtime_ns}\n".encode())
    return f"{name}-{h.hexdigest()[:16]}"


def max_seq_length(path: Path) -> int:
    config = path / "sentence_bert_config.json"
    if config.is_file():
        return int(json.loads(config.read_text()).get("max_seq_length") or 512)
    return 512


def load_tokenizer(path: Path):
    """The model's tokenizer as the exported graph takes it: unpadded (a batch pads to its
    longest text) and cut at the model's own token limit."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(path / "tokenizer.json"))
    tokenizer.no_padding()
    tokenizer.enable_truncation(max_seq_length(path))
    return tokenizer


def _export_step(path: Path, folder: Path, step: str, out: Path) -> None:
    source = folder / _MADE_FROM[step] if _MADE_FROM[step] else None
    if step == "openvino-int8.xml":
        return quantize_openvino(path, source, out)
    if step == "model-int8.onnx":
        return quantize_int8(source, out)
    if step == "model-fp32.onnx":
        return _fuse(path, source, out)
    _trace(path, out)


def _trace(path: Path, plain: Path) -> None:
    import warnings

    import torch
    from transformers import AutoModel
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # "Loading weights" bars on the command line

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


CALIBRATION_WINDOW = 600  # characters: about one chunk


def calibration_texts(path: Path) -> list[str]:
    """What int8 quantization measures the model's activations on: the model card that ships
    in the model's own folder (README.md), as chunk-sized windows and as single lines, so the
    ranges come from the model's own files, not from any corpus it will embed."""
    card = path / "README.md"
    text = card.read_text(encoding="utf-8", errors="replace") if card.is_file() else ""
    lines = [" ".join(x.split()) for x in text.splitlines()]
    lines = [x for x in lines if len(x) >= 20]
    flat = " ".join(lines)
    windows = [
        flat[i : i + CALIBRATION_WINDOW] for i in range(0, len(flat), CALIBRATION_WINDOW // 2)
    ]
    if len(flat) < 2_000:
        raise ModelError(
            f"{path} has no model card (README.md) long enough to calibrate int8 on; "
            "use --embed-backend openvino"
        )
    return windows + lines


def quantize_openvino(path: Path, source: Path, target: Path) -> None:
    """Static int8 quantization by NNCF (OpenVINO's own tool), in its transformer mode (it keeps
    softmax and layer norms in float), calibrated on `calibration_texts`. Measured on a CPU with
    int8 dot-product instructions (VNNI): 1.34x faster than float, vectors at cosine 0.988
    minimum, 0.996 mean, to torch's (docs/speed.md, "Embedding backends")."""
    try:
        import nncf
        import numpy as np
        import openvino as ov
        import rich
    except ImportError as e:
        raise ModelError(f"int8 quantization needs nncf ({e}): pip install nncf") from None
    logging.getLogger("nncf").setLevel(logging.ERROR)  # its notes; the bars are rich's, below
    tokenizer = load_tokenizer(path)

    def feed(text: str) -> dict:
        ids = np.array([tokenizer.encode(text).ids], dtype=np.int64)
        return {
            "input_ids": ids,
            "attention_mask": np.ones_like(ids),
            "token_type_ids": np.zeros_like(ids),
        }

    texts = calibration_texts(path)
    console = rich.get_console()  # NNCF draws its progress bars on rich's shared console
    was, console.quiet = console.quiet, True  # the one-line "exporting … once" says enough
    try:
        model = nncf.quantize(
            ov.Core().read_model(str(source)),
            nncf.Dataset(texts, feed),
            model_type=nncf.ModelType.TRANSFORMER,
            subset_size=len(texts),
        )
    finally:
        console.quiet = was
    ov.save_model(model, str(target), compress_to_fp16=False)
