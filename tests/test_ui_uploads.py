"""Uploads are indexed in the background, one at a time, with their progress to show, and hold
no more text than the upload limit allows. Real files, MiniLM, and a real Gradio server."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

from rag import InputError
from rag.reading.ingest import SUPPORTED, read_document
from ui import render
from ui.app import build_app
from ui.service import UploadJob, safe_upload_name

from .test_ui_api import LUNAR, client_for, snapshot
from .ui_helpers import make_service, running

DATA = Path(__file__).parent / "data"


@pytest.fixture()
def service(tmp_path, seed_settings, embedder):
    return make_service(tmp_path, seed_settings, embedder, max_upload_chars=5_000)


def test_an_upload_over_the_text_limit_gets_one_line_that_names_the_setting(service):
    before = snapshot(service)
    # 11 KB of text: under the byte limit, over the 5,000 characters an upload may hold
    with pytest.raises(InputError) as err:
        service.add_upload(DATA / "Apache-2.0.txt")
    assert str(err.value) == (
        "Apache-2.0.txt: 11,358 characters of text, over the limit of 5,000 per upload "
        "(RAG_MAX_UPLOAD_CHARS); split it into smaller files or ask whoever runs the server "
        "to raise the limit"
    )
    # a 140 KB PDF whose text runs past the limit: refused the same way
    with pytest.raises(
        InputError,
        match=r"^shared-mime-info-spec.pdf: [\d,]+ characters of text, "
        r"over the limit of 5,000 per upload \(RAG_MAX_UPLOAD_CHARS\)",
    ):
        service.add_upload(DATA / "shared-mime-info-spec.pdf")
    assert snapshot(service) == before
    assert not any(service.settings.uploads_path.glob("*"))


def test_a_file_over_the_per_file_limit_too_names_that_limit(tmp_path, seed_settings, embedder):
    service = make_service(
        tmp_path, seed_settings, embedder, max_upload_chars=5_000, max_file_chars=8_000
    )
    with pytest.raises(InputError) as err:
        service.add_upload(DATA / "Apache-2.0.txt")
    assert "over the limit of 8,000 per file (RAG_MAX_FILE_CHARS)" in str(err.value)
    assert "RAG_MAX_UPLOAD_CHARS" not in str(err.value)


# a real file for each type the engine reads; a type added without one fails the test below
SAMPLES = {
    ".txt": "Apache-2.0.txt",
    ".md": "pip-authentication.md",
    ".markdown": "pip-authentication.md",
    ".rst": "venv.rst",
    ".html": "venv.html",
    ".htm": "venv.html",
    ".pdf": "shared-mime-info-spec.pdf",
}


def test_the_upload_widget_offers_exactly_the_types_the_engine_reads(service, tmp_path):
    """The types the page's file picker offers, read from the built app, are the ingester's
    own list; and each is really read: a real file of that type gives its text."""
    (widget,) = [
        b for b in build_app(service).blocks.values() if getattr(b, "elem_id", None) == "rag-upload"
    ]
    assert sorted(widget.file_types) == sorted(SUPPORTED)
    for ext in widget.file_types:
        assert safe_upload_name(f"Report{ext.upper()}") == f"Report{ext}"
        sample = tmp_path / f"sample{ext}"
        shutil.copy(DATA / SAMPLES[ext], sample)
        text, _ = read_document(sample)
        assert len(text.split()) > 200, ext


def test_an_upload_is_indexed_in_the_background_and_reports_its_progress(service, tmp_path):
    src = tmp_path / "lunar.md"
    src.write_text(LUNAR, encoding="utf-8")
    bad = tmp_path / "tool.exe"
    bad.write_bytes(b"MZ")
    # another change to the index is under way: the upload waits for it, the caller does not
    with service._index_lock:
        job = service.submit_upload(src)
        refused = service.submit_upload(bad)
        assert job.state in ("waiting", "indexing") and not job.finished
        assert refused.state == "failed" and refused.message.startswith("tool.exe: unsupported")
        # questions are answered meanwhile, from the index as it was
        answer = service.ask("Where will Macron meet Trump?", mode="extractive")
        assert answer.citations and "lunar" not in service.pipeline.index.docs
        assert not service.upload_jobs([job.id])[0].finished
    done = service.wait_upload(job.id, timeout=300)
    assert done.state == "done" and done.message.startswith("lunar.md: added “Lunar Research")
    # the progress hook went through every phase; the last one counted the one chunk
    assert (done.phase, done.done, done.total) == ("embedding", 1, 1)
    assert "lunar" in service.pipeline.index.docs
    assert [j.id for j in service.upload_jobs([refused.id, "nope", job.id])] == [
        refused.id,
        job.id,
    ]


def test_the_upload_lines_show_progress_then_the_result():
    jobs = [
        UploadJob("1", "big<1>.md", "indexing", "embedding", 120, 900),
        UploadJob("2", "next.md"),
        UploadJob("3", "ok.md", "done", message="ok.md: added “X” (1 chunk); ask about it now"),
        UploadJob("4", "bad.exe", "failed", message="bad.exe: unsupported file type .exe"),
        UploadJob("5", "new.txt", "indexing"),
    ]
    html = render.uploads_html(jobs)
    assert (
        '<div class="rag-pending">big&lt;1&gt;.md: embedding 120 of 900 chunks'
        '<progress value="120" max="900"></progress></div>'
    ) in html
    assert "next.md: waiting for the uploads before it</div>" in html
    assert '<div class="rag-ok">ok.md: added “X” (1 chunk); ask about it now</div>' in html
    assert '<div class="rag-error">bad.exe: unsupported file type .exe</div>' in html
    assert "new.txt: starting…<progress></progress>" in html
    assert render.uploads_html([]) == ""


@pytest.mark.slow
def test_questions_are_answered_while_an_upload_is_indexed(tmp_path, seed_settings, embedder):
    """Over HTTP: an upload that cannot be indexed yet holds up neither /ask nor /documents,
    and /upload returns its result once indexed."""
    from concurrent.futures import ThreadPoolExecutor

    from gradio_client import handle_file

    service = make_service(tmp_path, seed_settings, embedder)
    src = tmp_path / "lunar.md"
    src.write_text(LUNAR, encoding="utf-8")
    with running(service) as url, ThreadPoolExecutor(1) as pool:
        client = client_for(url)
        with service._index_lock:  # another index change is under way
            pending = pool.submit(
                client_for(url).predict, [handle_file(str(src))], api_name="/upload"
            )
            deadline = time.monotonic() + 120
            while not service.upload_jobs(list(service._jobs)):
                assert time.monotonic() < deadline, "the upload never reached the service"
                time.sleep(0.1)
            r = client.predict(
                "Where will Macron meet Trump?", [], 5, "extractive", api_name="/ask"
            )
            assert r["citations"] and not pending.done()
            assert "lunar" not in {d["doc_id"] for d in client.predict(api_name="/documents")}
        result = pending.result(timeout=300)
    assert result == [
        {
            "file": "lunar.md",
            "ok": True,
            "message": "lunar.md: added “Lunar Research Station Opens Near Shackleton Crater” "
            "(1 chunk); ask about it now",
        }
    ]
