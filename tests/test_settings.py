"""Settings: where each value comes from, the one line that names a bad one and its source, and
the core's independence from the UI (`rag serve` finds it through an entry point)."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from importlib.metadata import EntryPoint

import pytest

from rag import InputError, RagError, Settings
from rag.cli import UI_ENTRY_POINTS, _find_ui, main

from .conftest import ROOT


def test_settings_come_from_config_file_then_env_then_flags(tmp_path):
    conf = tmp_path / "my.toml"
    conf.write_text('[rag]\ngguf = "models/big.gguf"\ntop_k = 8\nmode = "extractive"\n')
    s = Settings.load(env={"RAG_CONFIG": str(conf), "RAG_TOP_K": "3"}, mode="generate")
    assert (s.gguf, s.top_k, s.mode) == ("models/big.gguf", 3, "generate")
    s = Settings.load(env={"RAG_TOP_K": "3", "RAG_ALLOW_MODEL_SWITCH": "yes"}, top_k="7")
    assert (s.top_k, s.allow_model_switch) == (7, True)
    conf.write_text("[rag]\ntop_kk = 8\n")
    with pytest.raises(InputError, match="unknown settings top_kk"):
        Settings.load(env={"RAG_CONFIG": str(conf)})


def test_a_whole_number_is_taken_for_a_float_and_kept_as_one():
    s = Settings.load(env={"RAG_TEMPERATURE": "1"}, llm_timeout=5)
    assert (s.temperature, s.llm_timeout) == (1.0, 5.0)
    assert type(s.replace(temperature=0).temperature) is float


@pytest.mark.parametrize(
    "line,message",
    [
        ('top_k = "8"', 'top_k = "8" must be a whole number'),
        ("top_k = 8.0", "top_k = 8.0 must be a whole number"),
        ("top_k = true", "top_k = true must be a whole number"),
        ("top_k = 0", "top_k = 0 must be at least 1"),
        ("top_k = 51", "top_k = 51 must be at most 50"),
        ("chunk_size = 10", "chunk_size = 10 must be at least 50"),
        ('temperature = "hot"', 'temperature = "hot" must be a number'),
        ("temperature = nan", "temperature = nan must be a number"),
        ("temperature = 3", "temperature = 3 must be at most 2.0"),
        ('allow_model_switch = "yes"', 'allow_model_switch = "yes" must be true or false'),
        ('mode = "chatty"', 'mode = "chatty" must be generate or extractive'),
        ('retrieval = "vector"', 'retrieval = "vector" must be hybrid, dense or bm25'),
        ("gguf = 5", "gguf = 5 must be text"),
        ("index_dir = [1, 2]", "index_dir = [1, 2] must be text"),
        ("port = 70000", "port = 70000 must be at most 65535"),
    ],
)
def test_a_bad_value_in_the_config_file_is_one_line_naming_file_and_setting(
    tmp_path, line, message
):
    conf = tmp_path / "my.toml"
    conf.write_text(f"[rag]\n{line}\n")
    with pytest.raises(InputError) as err:
        Settings.load(env={"RAG_CONFIG": str(conf)})
    assert str(err.value) == f"{conf}: {message}"


def test_rag_toml_in_the_working_folder_is_named_as_it_is_found(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "rag.toml").write_text('[rag]\ntop_k = "8"\n')
    with pytest.raises(InputError) as err:
        Settings.load(env={})
    assert str(err.value) == 'rag.toml: top_k = "8" must be a whole number'


@pytest.mark.parametrize(
    "name,raw,message",
    [
        ("RAG_TOP_K", "x", 'RAG_TOP_K="x" must be a whole number'),
        ("RAG_TOP_K", "2.5", 'RAG_TOP_K="2.5" must be a whole number'),
        ("RAG_TOP_K", "0", 'RAG_TOP_K="0" must be at least 1'),
        ("RAG_TOP_K", "100", 'RAG_TOP_K="100" must be at most 50'),
        ("RAG_EVIDENCE_K", "-1", 'RAG_EVIDENCE_K="-1" must be at least 1'),
        ("RAG_TEMPERATURE", "inf", 'RAG_TEMPERATURE="inf" must be a number'),
        ("RAG_LLM_TIMEOUT", "0", 'RAG_LLM_TIMEOUT="0" must be at least 1.0'),
        (
            "RAG_ALLOW_MODEL_SWITCH",
            "maybe",
            'RAG_ALLOW_MODEL_SWITCH="maybe" must be 1 or 0 (true or false)',
        ),
        ("RAG_MODE", "chatty", 'RAG_MODE="chatty" must be generate or extractive'),
        (
            "RAG_EMBED_BACKEND",
            "gpu",
            'RAG_EMBED_BACKEND="gpu" must be auto, openvino-int8, openvino, onnx-int8, onnx or torch',
        ),
        ("RAG_PORT", "x\ny", 'RAG_PORT="x\\ny" must be a whole number'),
        ("RAG_PORT", "9" * 80, 'RAG_PORT="' + "9" * 56 + "... must be at most 65535"),
    ],
)
def test_a_bad_environment_variable_is_one_line_naming_it(name, raw, message):
    with pytest.raises(InputError) as err:
        Settings.load(env={name: raw})
    assert str(err.value) == message


@pytest.mark.parametrize(
    "argv,message",
    [
        (["ask", "--top-k", "0"], "--top-k 0 must be at least 1"),
        (["ask", "--top-k", "x"], "--top-k x must be a whole number"),
        (["ask", "--top-k", "51"], "--top-k 51 must be at most 50"),
        (["ask", "--top-k", "1 0"], '--top-k "1 0" must be a whole number'),
        (["ask", "--evidence-k", "0"], "--evidence-k 0 must be at least 1"),
        (["ask", "--chunk-size", "49"], "--chunk-size 49 must be at least 50"),
        (["ask", "--mode", "chatty"], "--mode chatty must be generate or extractive"),
        (
            ["ask", "--embed-backend", "tpu"],
            "--embed-backend tpu must be auto, openvino-int8, openvino, onnx-int8, onnx or torch",
        ),
        (["ask", "--retrieval", "vector"], "--retrieval vector must be hybrid, dense or bm25"),
        (["ask", "--threads", "many"], "--threads many must be a whole number"),
        (["index", "--chunk-size", "big"], "--chunk-size big must be a whole number"),
        (["serve", "--port", "99999"], "--port 99999 must be at most 65535"),
    ],
)
def test_a_bad_flag_is_one_line_naming_it_and_exit_1(capsys, argv, message):
    question = ["What did Macron say?"] if argv[0] == "ask" else []
    assert main([*argv, *question]) == 1
    assert capsys.readouterr().err == f"error: {message}\n"


def test_values_set_in_code_are_checked_too():
    s = Settings.load(env={})
    with pytest.raises(InputError, match="^top_k = 0 must be at least 1$"):
        s.replace(top_k=0)
    with pytest.raises(InputError, match='^mode = "chatty" must be generate or extractive$'):
        Settings(mode="chatty")


def test_the_limits_are_read_from_the_fields():
    assert Settings.limits("top_k") == (1, 50)
    assert Settings.limits("index_dir") == (None, None)
    assert Settings.choices("retrieval") == ("hybrid", "dense", "bm25")
    assert Settings.choices("top_k") == ()


def test_the_cli_and_the_pipeline_run_without_loading_gradio():
    code = (
        "import sys, rag, rag.cli, rag.loader, rag.answering.pipeline\n"
        "try:\n    rag.cli.main(['ask', '--help'])\nexcept SystemExit:\n    pass\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('gradio', 'ui')))\n"
    )
    r = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[-1] == "[]"


def test_rag_serve_finds_the_ui_through_the_entry_point_pyproject_declares():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert project["entry-points"][UI_ENTRY_POINTS] == {"ui": "ui.app:serve"}
    from ui.app import serve

    assert _find_ui() is serve


def test_rag_serve_without_the_ui_names_the_fix():
    with pytest.raises(RagError, match=r"not installed: run `pip install -e \.`"):
        _find_ui([])
    missing = EntryPoint("ui", "no_such_ui.app:serve", UI_ENTRY_POINTS)
    with pytest.raises(RagError, match=r"needs the module no_such_ui, .*`pip install -e \.`"):
        _find_ui([missing])
