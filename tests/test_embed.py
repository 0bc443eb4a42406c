"""The shipped embedding backend against today's path (sentence-transformers, torch, float32),
on the real seed articles, with the bundled MiniLM."""

from __future__ import annotations

import logging
import shutil

import numpy as np
import pytest

from rag import Settings, update
from rag.errors import IndexMismatch
from rag.indexing.embed import (
    DEFAULT_BACKEND,
    OnnxEmbedder,
    SentenceTransformerEmbedder,
    default_embedder_name,
    load_embedder,
)
from rag.reading.chunking import split_sentences

from .conftest import SEEDS


@pytest.fixture(scope="session")
def sentences() -> list[str]:
    text = sorted(SEEDS.glob("*.txt"))[0].read_text(encoding="utf-8")
    found = [text[s.start : s.end] for s in split_sentences(text)][:40]
    return [*found, "How many Ukrainians have been displaced?", "France", text[:1500]]


@pytest.fixture(scope="session")
def torch_embedder():
    return load_embedder("", backend="torch")


def test_the_default_backend_is_the_one_shipped(embedder):
    assert embedder.name == default_embedder_name() == f"all-MiniLM-L6-v2+{DEFAULT_BACKEND}"


def test_shipped_vectors_agree_with_torch(embedder, torch_embedder, sentences):
    ours, today = embedder.embed(sentences), torch_embedder.embed(sentences)
    assert ours.shape == today.shape == (len(sentences), 384) and ours.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-4)
    cosines = (ours * today).sum(1)  # int8: close, not equal (docs/speed.md's table: same recall)
    assert cosines.min() > 0.97 and cosines.mean() > 0.99


def test_float32_backends_equal_torch(torch_embedder, sentences):
    today = torch_embedder.embed(sentences)
    openvino = load_embedder("", backend="openvino")
    assert openvino.name == "all-MiniLM-L6-v2+openvino"
    assert (openvino.embed(sentences) * today).sum(1).min() > 0.9999
    onnx = OnnxEmbedder(int8=False)
    assert (onnx.embed(sentences) * today).sum(1).min() > 0.9999


def test_int8_onnx_stays_close_to_torch(torch_embedder, sentences):
    int8 = load_embedder("", backend="onnx-int8")
    assert int8.name == "all-MiniLM-L6-v2+onnx-int8"
    assert (int8.embed(sentences) * torch_embedder.embed(sentences)).sum(1).min() > 0.99


def test_vectors_come_back_in_the_order_given(embedder, sentences):
    """Texts are sorted by length into batches; each vector must return to its text."""
    together = embedder.embed(sentences)
    alone = np.stack([embedder.embed([s])[0] for s in sentences[:8]])
    assert (together[:8] * alone).sum(1).min() > 0.99
    assert embedder.embed([]).shape == (0, 384)


def test_an_index_records_its_backend(tmp_path, embedder, torch_embedder):
    """Vectors from another backend differ, so the manifest refuses the other one."""
    from rag import load_index

    settings = Settings.load(env={}, index_dir=str(tmp_path / "index"))
    update(settings, torch_embedder, [str(SEEDS)])
    with pytest.raises(IndexMismatch, match=r"\+openvino"):
        load_index(settings, embedder)


def test_a_model_that_cannot_be_exported_falls_back_to_torch(tmp_path, caplog):
    """CLS pooling is not what the exporter reproduces: torch, and one warning saying why."""
    from rag.indexing.embed import bundled_embedder_path

    src, model = bundled_embedder_path(), tmp_path / "cls-model"
    model.mkdir()
    for f in src.iterdir():
        if f.is_file():
            (model / f.name).symlink_to(f)
    (model / "1_Pooling").mkdir()
    (model / "1_Pooling" / "config.json").write_text(
        '{"word_embedding_dimension": 384, "pooling_mode_cls_token": true, '
        '"pooling_mode_mean_tokens": false}'
    )
    with caplog.at_level(logging.WARNING, logger="rag.indexing.embed"):
        e = load_embedder(str(model), backend="openvino")
    assert isinstance(e, SentenceTransformerEmbedder) and e.name == "cls-model"
    assert [r.getMessage() for r in caplog.records if "torch instead" in r.getMessage()]


def test_the_shipped_embedder_gives_each_thread_its_own_answer():
    """The UI embeds questions from several threads at once."""
    from concurrent.futures import ThreadPoolExecutor

    from rag.indexing.embed import load_embedder

    e = load_embedder("")
    texts = [f"Sentence {i}: the oven was set to {i * 7} degrees." for i in range(32)]
    ref = e.embed(texts)
    with ThreadPoolExecutor(8) as pool:
        out = list(pool.map(lambda i: e.embed([texts[i % 32]])[0], range(128)))
    assert min(float(v @ ref[i % 32]) for i, v in enumerate(out)) > 0.9999


def test_int8_falls_back_to_float32_without_a_model_card_to_calibrate_on(tmp_path, caplog):
    """The int8 model is calibrated on the card in the model's folder; a folder without one
    still embeds, in float32, with one warning saying why."""
    from rag.indexing.embed import bundled_embedder_path

    src, model = bundled_embedder_path(), tmp_path / "no-card"
    shutil.copytree(src, model, ignore=shutil.ignore_patterns("README.md", "model.safetensors"))
    (model / "model.safetensors").symlink_to(src / "model.safetensors")
    with caplog.at_level(logging.WARNING, logger="rag.indexing.embed"):
        e = load_embedder(str(model), backend="openvino-int8")
    assert e.name == "no-card+openvino"
    assert [r.getMessage() for r in caplog.records if "instead of int8" in r.getMessage()]
    assert "README.md" in caplog.text


@pytest.mark.parametrize(
    "flags,cap,int8",
    [
        ({"avx2", "avx512f", "avx512_vnni"}, "", True),  # a server with AVX-512 VNNI
        ({"avx2", "avx_vnni"}, "", True),  # a laptop with AVX-VNNI
        ({"avx2", "amx_int8", "avx512f"}, "", True),
        ({"avx2", "fma"}, "", False),  # AVX2 alone: int8 is slower than float there
        ({"avx2", "avx512f"}, "", False),  # AVX-512 without VNNI
        ({"avx2", "avx512f", "avx512_vnni"}, "AVX2", False),  # capped as an AVX2 laptop
        ({"avx2", "avx512f", "avx512_vnni"}, "avx512_core_vnni", True),
        (set(), "", False),  # no /proc/cpuinfo (macOS): float, which is right everywhere
    ],
)
def test_int8_is_the_default_only_where_the_cpu_has_int8_dot_products(flags, cap, int8):
    from rag.indexing.cpu import int8_dot_products

    assert int8_dot_products(frozenset(flags), cap) is int8
