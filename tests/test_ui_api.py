"""The UI's handlers and its API, with real parts: the seed articles, MiniLM, SmolLM2 through
llama.cpp, and real Gradio servers on loopback driven by gradio_client."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError

from rag import Answer, InputError, RagError, load_index
from rag.llm.generate import bundled_gguf_path
from ui import render
from ui.app import build_app, launch
from ui.service import Service

from .conftest import ROOT, SEEDS, file_text
from .ui_helpers import free_port, make_service, running

BACKCHANNEL = (
    "Sources say both leaders explored backchannel talks involving Turkey and Saudi Arabia."
)
SPLIT = "trump-macron-split-on-trusting-putin"
LUNAR = (
    "# Lunar Research Station Opens Near Shackleton Crater\n\n"
    "The European Space Agency opened a small research station near Shackleton crater on "
    "Tuesday. The station houses four scientists who will study water ice.\n"
)


def client_for(url: str, **kw) -> Client:
    return Client(url, verbose=False, analytics_enabled=False, **kw)


@pytest.fixture()
def service(tmp_path, seed_settings, embedder):
    """No LLM: upload, removal and the viewer do not need one."""
    return make_service(tmp_path, seed_settings, embedder, max_upload_bytes=5_000)


def snapshot(service: Service):
    manifest = Path(service.settings.index_dir) / "manifest.json"
    return (
        manifest.read_bytes(),
        set(service.pipeline.index.docs),
        len(service.pipeline.index.chunks),
    )


# -- handlers --------------------------------------------------------------------------------
def test_an_upload_with_a_traversal_name_is_saved_inside_the_uploads_folder(service, tmp_path):
    src = tmp_path / "incoming.md"
    src.write_text(LUNAR, encoding="utf-8")
    message = service.add_upload(src, name="../../escape.md")

    uploads = service.settings.uploads_path
    assert (uploads / "escape.md").read_text(encoding="utf-8") == LUNAR
    assert [p for p in tmp_path.rglob("escape.md")] == [uploads / "escape.md"]
    assert (
        message
        == "escape.md: added “Lunar Research Station Opens Near Shackleton Crater” (1 chunk); ask about it now"
    )
    row = next(r for r in service.documents() if r.doc_id == "escape")
    assert row.uploaded and row.chunks == 1 and Path(row.file) == uploads / "escape.md"
    # answerable right away, from the same process's pipeline
    answer = service.ask(
        "Where did the European Space Agency open a research station?", mode="extractive"
    )
    assert answer.citations[0].doc_id == "escape"


BAD_FILES = [
    (
        "photo.txt",
        b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR",
        "photo.txt: looks like a binary file, not text",
    ),
    ("latin1.txt", "café au lait".encode("latin-1"), "latin1.txt: not UTF-8 text"),
    ("empty.md", b"", "empty.md: the file is empty"),
    ("blank.txt", b"  \n\n  ", "blank.txt: the file is empty"),
    ("tool.exe", b"MZ\x90\x00", "tool.exe: unsupported file type .exe; upload one of .txt"),
    (
        "big.txt",
        b"word " * 2_000,
        "big.txt is 9.8 KB; the upload limit is 4.9 KB (RAG_MAX_UPLOAD_BYTES)",
    ),
    ("broken.pdf", b"%PDF-1.4 this is not really a pdf", "broken.pdf: "),
]


@pytest.mark.parametrize("name,data,message", BAD_FILES, ids=[b[0] for b in BAD_FILES])
def test_a_bad_file_gets_one_clear_line_and_leaves_the_index_as_it_was(
    service, tmp_path, name, data, message
):
    src = tmp_path / name
    src.write_bytes(data)
    before = snapshot(service)
    with pytest.raises(InputError) as err:
        service.add_upload(src, name)
    assert str(err.value).startswith(message) and "\n" not in str(err.value)
    assert snapshot(service) == before
    uploads = service.settings.uploads_path
    assert not uploads.exists() or not any(uploads.iterdir())


def test_a_bad_new_version_of_an_upload_keeps_the_good_one(service, tmp_path):
    good, bad = tmp_path / "good", tmp_path / "bad"
    good.mkdir(), bad.mkdir()
    (good / "notes.md").write_text(LUNAR, encoding="utf-8")
    (bad / "notes.md").write_bytes(b"\x00\x01binary")
    service.add_upload(good / "notes.md")
    before = snapshot(service)
    with pytest.raises(InputError, match="looks like a binary file"):
        service.add_upload(bad / "notes.md")
    assert (service.settings.uploads_path / "notes.md").read_text(encoding="utf-8") == LUNAR
    assert snapshot(service) == before
    assert [p.name for p in service.settings.uploads_path.iterdir()] == ["notes.md"]


def test_removing_an_upload_deletes_it_and_removing_a_seed_keeps_its_file(service, tmp_path):
    src = tmp_path / "lunar.md"
    src.write_text(LUNAR, encoding="utf-8")
    service.add_upload(src)
    assert (
        service.remove("lunar")
        == "removed “Lunar Research Station Opens Near Shackleton Crater” from the index"
    )
    assert not (service.settings.uploads_path / "lunar.md").exists()

    msg = service.remove(SPLIT)
    assert msg.endswith("stays on disk, so indexing that folder again adds it back")
    assert (SEEDS / f"{SPLIT}.txt").exists()
    assert [r.doc_id for r in service.documents()] == ["macron-to-press-trump-on-putin"]
    assert (
        SPLIT not in load_index(service.settings, service.embedder).docs
    )  # saved, not just in memory
    with pytest.raises(InputError, match="no document 'nope' in the index"):
        service.remove("nope")


def test_the_viewer_shows_the_cited_span_by_its_offsets(service):
    answer = service.ask(
        "Which countries were involved in the backchannel talks?", mode="extractive"
    )
    c = next(c for c in answer.citations if c.quote == BACKCHANNEL)
    title, source, text, start, end, note = service.source(render.parse_ref(render.source_ref(c)))
    assert text[start:end] == c.quote == file_text(c.source)[start:end] and note == ""
    html = render.article_html(c.doc_id, title, source, text, start, end)
    assert f">{BACKCHANNEL}</mark>" in html

    changed = service.source(render.Ref(c.doc_id, c.start, c.end, "0123456789"))
    assert "changed after the answer was given" in changed[-1]
    with pytest.raises(InputError, match="no longer in the index"):
        service.source(render.Ref("gone", 0, 1))
    with pytest.raises(InputError, match="outside"):
        service.source(render.Ref(c.doc_id, 0, 10**7))


def test_a_busy_port_is_named_with_the_fix(service):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        settings = service.settings.replace(port=busy.getsockname()[1])
        with pytest.raises(InputError, match=r"port \d+ on 127.0.0.1 is in use: .*--port N"):
            launch(build_app(service), settings, block=False, quiet=True)


def test_answer_settings_are_checked_with_a_sentence(service):
    assert service.overrides("8", "extractive") == {"top_k": 8, "mode": "extractive"}
    assert service.overrides(None, "") == {}
    with pytest.raises(InputError, match="^top_k = 0 must be at least 1$"):
        service.overrides(0, None)
    with pytest.raises(InputError, match="^top_k = 51 must be at most 50$"):
        service.overrides("51", None)
    with pytest.raises(InputError, match="^top-k must be a whole number, not 'many'$"):
        service.overrides("many", None)
    with pytest.raises(InputError, match='^mode = "chatty" must be generate or extractive$'):
        service.overrides(None, "chatty")


def test_the_top_k_slider_spans_the_bounds_settings_holds(service):
    import gradio as gr

    from rag import Settings

    demo = build_app(service)
    (slider,) = [b for b in demo.blocks.values() if isinstance(b, gr.Slider)]
    assert (slider.minimum, slider.maximum) == Settings.limits("top_k")


def test_the_model_list_offers_the_bundled_model_and_gguf_files_in_models_dir(service):
    models = Path(service.settings.models_dir)
    (models / "sub").mkdir(parents=True)
    (models / "sub" / "tiny.gguf").write_bytes(b"GGUF")
    assert service.models() == {
        "SmolLM2-135M-Instruct (bundled)": str(bundled_gguf_path()),
        "sub/tiny.gguf": str(models / "sub" / "tiny.gguf"),
    }


@pytest.mark.slow
def test_a_bad_gguf_gives_a_clear_message_and_keeps_the_previous_model(
    tmp_path, seed_settings, embedder, generator
):
    service = make_service(tmp_path, seed_settings, embedder, generator, allow_model_switch=True)
    models = Path(service.settings.models_dir)
    models.mkdir()
    (models / "fake.gguf").write_bytes(b"not a model")
    for name, message in [
        (str(tmp_path / "missing.gguf"), "choose a model from the list"),
        ("fake.gguf", "fake.gguf could not be loaded"),
    ]:
        with pytest.raises(RagError, match=message) as err:
            service.use_model(name)
        assert str(tmp_path) not in str(err.value).replace(str(models), "")
        assert service.pipeline.generator is generator
    assert service.use_model(service.model) == "SmolLM2-135M-Instruct.Q4_1.gguf is already in use"


# -- a real server, through gradio_client ------------------------------------------------------
@pytest.fixture(scope="module")
def live(tmp_path_factory, seed_settings, embedder, generator):
    root = tmp_path_factory.mktemp("ui-api")
    service = make_service(root, seed_settings, embedder, generator, max_upload_bytes=50_000)
    with running(service) as url:
        yield service, url


@pytest.fixture(scope="module")
def client(live):
    return client_for(live[1])


@pytest.mark.slow
def test_the_server_listens_on_loopback_only(live):
    service, url = live
    assert url == f"http://127.0.0.1:{service.settings.port}/"


@pytest.mark.slow
def test_ask_returns_the_checked_answer_as_json(client):
    r = client.predict("Which countries were involved in the backchannel talks?", api_name="/ask")
    assert set(r) == {
        "question",
        "answer",
        "abstained",
        "mode",
        "citations",
        "timings",
        "retrieval_query",
        "confidence",
        "outcome",
        "why",
        "note",
        "final",
        "pending",
    }
    assert r["final"] and r["mode"] in ("generate", "extractive") and not r["abstained"]
    assert "Turkey" in r["answer"] and "Saudi Arabia" in r["answer"]
    assert BACKCHANNEL in [c["quote"] for c in r["citations"]]
    for c in r["citations"]:
        assert f"[{c['n']}]" in r["answer"]
        assert file_text(c["source"])[c["start"] : c["end"]] == c["quote"]


@pytest.mark.slow
def test_ask_streams_the_checked_quote_before_the_rewrite(client):
    """Answer first: the quote arrives as soon as it is found, marked not final; the last
    output is the final answer, which is also what `predict` returns."""
    job = client.submit(
        "Which countries were involved in the backchannel talks?",
        [],
        5,
        "generate",
        api_name="/ask",
    )
    outputs = list(job)
    assert len(outputs) == 2
    first, last = outputs
    assert not first["final"] and first["mode"] == "extractive"
    assert BACKCHANNEL in [c["quote"] for c in first["citations"]]
    assert last["final"] and last["mode"] in ("generate", "extractive")
    assert first["timings"]["first_answer_ms"] == last["timings"]["first_answer_ms"]
    assert first["timings"]["total_ms"] < last["timings"]["total_ms"]


@pytest.mark.slow
def test_ask_searches_a_follow_up_with_the_earlier_question(client):
    earlier = "Is France going to send combat troops to Ukraine?"
    r = client.predict("What would he deploy instead?", [earlier], 5, "extractive", api_name="/ask")
    assert r["retrieval_query"] == f"{earlier} What would he deploy instead?"
    assert "security force" in r["answer"]


@pytest.mark.slow
def test_ask_abstains_when_the_articles_do_not_say(client):
    r = client.predict("Who won the 2022 World Cup?", api_name="/ask")
    assert r["abstained"] and r["mode"] == "abstained" and r["citations"] == []


@pytest.mark.slow
@pytest.mark.parametrize(
    "args,message",
    [
        (("   ",), "the question is empty: type a question about the documents"),
        (("Where will Macron meet Trump?", [], 0), "top_k = 0 must be at least 1"),
        (
            ("Where will Macron meet Trump?", [], 5, "poetry"),
            'mode = "poetry" must be generate or extractive',
        ),
    ],
)
def test_ask_errors_are_the_engine_sentence_not_a_traceback(client, args, message):
    with pytest.raises(AppError) as err:
        client.predict(*args, api_name="/ask")
    assert message in str(err.value) and "Traceback" not in str(err.value)


@pytest.mark.slow
def test_source_returns_the_article_with_the_span_marked(client):
    start = file_text(str(SEEDS / f"{SPLIT}.txt")).index(BACKCHANNEL)
    r = client.predict(SPLIT, start, start + len(BACKCHANNEL), api_name="/source")
    assert r["quote"] == BACKCHANNEL and f">{BACKCHANNEL}</mark>" in r["html"]
    with pytest.raises(AppError, match="no longer in the index"):
        client.predict("nope", 0, 1, api_name="/source")


@pytest.mark.parametrize("doc_id", ["../../etc/passwd", "/etc/passwd", "..", "seeds/../../x"])
def test_the_document_api_takes_ids_not_paths(client, live, doc_id):
    """Path traversal through /remove and /source: ids are looked up, never opened as paths."""
    service, _ = live
    before = client.predict(api_name="/documents")
    with pytest.raises(AppError, match="no document|no longer in the index"):
        client.predict(doc_id, api_name="/remove")
    with pytest.raises(AppError, match="no longer in the index"):
        client.predict(doc_id, 0, 10, api_name="/source")
    assert client.predict(api_name="/documents") == before
    assert all(Path(d["file"]).exists() for d in before)


@pytest.mark.slow
def test_upload_documents_and_remove_through_the_api(client, live, tmp_path):
    service, _ = live
    (tmp_path / "lunar.md").write_text(LUNAR, encoding="utf-8")
    (tmp_path / "binary.txt").write_bytes(b"\x00\x01\x02 not text")
    before = client.predict(api_name="/documents")

    result = client.predict(
        [handle_file(str(tmp_path / "lunar.md")), handle_file(str(tmp_path / "binary.txt"))],
        api_name="/upload",
    )
    assert result[0] == {
        "file": "lunar.md",
        "ok": True,
        "message": "lunar.md: added “Lunar Research Station Opens Near Shackleton Crater” (1 chunk); ask about it now",
    }
    assert result[1] == {
        "file": "binary.txt",
        "ok": False,
        "message": "binary.txt: looks like a binary file, not text; convert it to text",
    }
    docs = client.predict(api_name="/documents")
    lunar = next(d for d in docs if d["doc_id"] == "lunar")
    assert lunar["uploaded"] and lunar["chunks"] == 1 and len(docs) == len(before) + 1
    assert Path(lunar["file"]).parent == service.settings.uploads_path

    q = "Where did the European Space Agency open a research station?"
    r = client.predict(q, [], 5, "extractive", api_name="/ask")
    assert r["citations"][0]["doc_id"] == "lunar" and "Shackleton" in r["answer"]

    assert client.predict("lunar", api_name="/remove").startswith("removed “Lunar Research Station")
    assert client.predict(api_name="/documents") == before
    r = client.predict(q, [], 5, "extractive", api_name="/ask")
    assert all(c["doc_id"] != "lunar" for c in r["citations"])


@pytest.mark.slow
def test_concurrent_clients_each_get_their_own_answer(live):
    """Several people at once: requests queue, the LLM runs one answer at a time, and every
    client gets the answer to its own question."""
    cases = {
        "Which countries were involved in the backchannel talks?": BACKCHANNEL,
        "How many civilians have died in the war?": "U.N. reports estimate over 10,000 civilian deaths and 14 million displaced Ukrainians.",
        "What did Trump call France?": "Macron praised Trump’s “pragmatism,” while the former president called France “a great ally.”",
        "Who won the 2022 World Cup?": None,
    }
    url = live[1]

    def ask(question):
        return client_for(url).predict(question, api_name="/ask")

    with ThreadPoolExecutor(len(cases)) as pool:
        results = dict(zip(cases, pool.map(ask, cases), strict=True))
    for question, sentence in cases.items():
        r = results[question]
        assert r["question"] == question
        if sentence is None:
            assert r["abstained"]
        else:
            assert sentence in [c["quote"] for c in r["citations"]], (question, r)


@pytest.mark.slow
def test_the_page_needs_no_other_host(live):
    url = live[1]
    config = httpx.get(f"{url}config").json()
    assert config["analytics_enabled"] is False and config["stylesheets"] == []
    theme = httpx.get(f"{url}theme.css").text
    assert "ui-sans-serif" in theme and "@import" not in theme and "googleapis" not in theme
    assert re.findall(r"url\(\s*['\"]?(?!data:)([^'\")]+)", theme) == []
    page = httpx.get(url).text
    loaded = re.findall(
        r"<(?:script|link|img|iframe)\b[^>]*\b(?:src|href)=\"(https?://[^\"]+)\"", page
    )
    assert all(u.startswith(url.rstrip("/")) for u in loaded), loaded


@pytest.mark.slow
def test_a_password_protects_the_app(tmp_path, seed_settings, embedder):
    service = make_service(tmp_path, seed_settings, embedder)
    with running(service, auth=("ann", "s3cret")) as url:
        assert httpx.get(f"{url}config").status_code == 401
        docs = client_for(url, auth=("ann", "s3cret")).predict(api_name="/documents")
        assert {d["doc_id"] for d in docs} == {SPLIT, "macron-to-press-trump-on-putin"}
        with pytest.raises(Exception):  # noqa: B017 - gradio_client's failure type varies
            client_for(url, auth=("ann", "wrong"))


@pytest.mark.slow
def test_rag_serve_indexes_the_seeds_then_serves_on_loopback(tmp_path):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAG_")}
    env.update(HF_HUB_OFFLINE="1", PYTHONUNBUFFERED="1", RAG_N_THREADS="1")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "rag",
            "serve",
            "--port",
            str(port),
            "--index-dir",
            str(tmp_path / "index"),
            "--index-path",
            str(SEEDS),
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    reader = threading.Thread(
        target=lambda: lines.extend(iter(proc.stdout.readline, "")), daemon=True
    )
    reader.start()
    try:
        deadline = time.monotonic() + 300
        while not any("Running on local URL" in ln for ln in lines):
            assert proc.poll() is None, "".join(lines)
            assert time.monotonic() < deadline, "".join(lines)
            time.sleep(0.5)
        out = "".join(lines)
        assert re.search(
            rf"{re.escape(str(tmp_path / 'index'))}/: 2 added; \d+ chunks in the index", out
        )
        assert f"http://127.0.0.1:{port}" in out and "warning" not in out
        docs = client_for(f"http://127.0.0.1:{port}/").predict(api_name="/documents")
        assert len(docs) == 2
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_a_rewrite_waits_until_no_one_else_is_waiting_for_a_quote(
    tmp_path, seed_settings, embedder
):
    """Quotes go first: while someone's first answer is still being found, the model does not
    start anyone's rewrite."""
    from .scripted import ScriptedGenerator

    model = ScriptedGenerator("Sources say the talks involved Turkey and Saudi Arabia [1].")
    service = make_service(tmp_path, seed_settings, embedder, model)
    events = service.stream("Which countries were involved in the backchannel talks?")
    first = next(events)
    assert isinstance(first, Answer) and not first.final and model.prompts == []

    with service._quoting:
        service._quotes_pending += 1  # someone else's quote is being found
    started = []
    waiting = threading.Thread(target=lambda: started.append(next(events)))
    waiting.start()
    waiting.join(0.5)
    assert waiting.is_alive() and model.prompts == []  # no rewrite yet
    with service._quoting:
        service._quotes_pending -= 1
        service._quoting.notify_all()
    waiting.join(10)
    assert started and len(model.prompts) == 1  # now it runs
    assert list(events)[-1].final


def test_models_loading_in_the_background_are_waited_for_and_a_failed_load_is_no_model():
    from concurrent.futures import Future

    from rag import ModelError
    from ui.loading import Loading

    pending: Future = Future()
    reader, writer = Loading(pending, 1), Loading(pending, 0)
    assert not reader.ready
    threading.Timer(0.2, pending.set_result, [("the writer", Scripted())]).start()
    assert reader.judge("q?", ["a passage"]) == [0.9]  # waited for the load
    assert writer.upper() == "THE WRITER" and reader.ready

    failed: Future = Future()
    failed.set_exception(ModelError("no such file"))
    assert Loading(failed, 1).judge("q?", ["a passage"]) is None  # the rules decide
    with pytest.raises(ModelError, match="could not be loaded"):
        _ = Loading(failed, 0).stream


class Scripted:
    def judge(self, question, candidates, stop_at=1.0, window=300, wait_s=None):
        return [0.9 for _ in candidates]

    def expected_wait(self) -> float:
        return 0.0
