import json
from pathlib import Path

import numpy as np
import pytest

from rag import (
    IndexCorrupt,
    IndexMismatch,
    IndexMissing,
    InputError,
    Settings,
    load_index,
    update,
)
from rag.indexing import store
from rag.indexing.embed import default_embedder_name
from rag.indexing.index import sentence_rows
from rag.indexing.indexer import remove_document
from rag.reading.sentences import READING

from .conftest import file_text


def _settings(tmp_path, **kw):
    return Settings.load(env={}, index_dir=str(tmp_path / "index"), **kw)


def test_faiss_search_equals_brute_force_numpy(seed_index, embedder):
    q = embedder.embed(["How many civilians died?", "defense spending", "Orbán sanctions"])
    scores, ids = seed_index.search(q, 5)
    brute = q @ seed_index.vectors.T
    expected = np.argsort(-brute, axis=1)[:, :5]
    assert (ids == expected).all()
    np.testing.assert_allclose(scores, np.take_along_axis(brute, expected, 1), rtol=1e-5)


def test_save_then_load_gives_the_same_search(seed_settings, seed_index, embedder, tmp_path):
    copy = _settings(tmp_path)
    store.save(seed_index, copy.index_dir)
    again = load_index(copy, embedder)
    q = embedder.embed(["What did Trump say about Putin?"])
    assert (again.search(q, 4)[1] == seed_index.search(q, 4)[1]).all()
    assert [c.text for c in again.chunks] == [c.text for c in seed_index.chunks]


def test_manifest_describes_the_index(seed_settings):
    m = json.loads((Path(seed_settings.index_dir) / "manifest.json").read_text())
    assert m["format"] == "rag-index" and m["version"] == 2
    assert m["embedding"] == {"model": default_embedder_name(), "dim": 384}  # backend too
    assert m["chunker"] == {"size": 600, "overlap": 1, "reading": READING}
    assert set(m["documents"]) == {
        "macron-to-press-trump-on-putin",
        "trump-macron-split-on-trusting-putin",
    }
    for doc in m["documents"].values():
        assert len(doc["sha256"]) == 64 and doc["chunks"] > 0
    assert set(m["checksums"]) == set(m["files"].values())


def test_chunks_point_into_their_source_files(seed_index):
    for c in seed_index.chunks:
        doc = seed_index.docs[c.doc_id].doc
        assert file_text(doc.source)[c.start : c.end] == c.text


def test_reindexing_is_incremental(tmp_path, embedder, docs_copy):
    s = _settings(tmp_path)
    _, r = update(s, embedder, [docs_copy])
    assert sorted(r.added) == [
        "macron-to-press-trump-on-putin",
        "trump-macron-split-on-trusting-putin",
    ]
    gen = json.loads((Path(s.index_dir) / "manifest.json").read_text())["generation"]

    _, r = update(s, embedder, [docs_copy])
    assert not r.changed and len(r.unchanged) == 2
    assert json.loads((Path(s.index_dir) / "manifest.json").read_text())["generation"] == gen

    path = docs_copy / "macron-to-press-trump-on-putin.txt"
    path.write_text(
        path.read_text(encoding="utf-8") + "\nMacron also praised the croissants.\n",
        encoding="utf-8",
    )
    (docs_copy / "copy.txt").write_bytes(
        (docs_copy / "trump-macron-split-on-trusting-putin.txt").read_bytes()
    )
    (docs_copy / "new.md").write_text(
        "# Note\n\nThe summit lasted three hours.\n", encoding="utf-8"
    )
    index, r = update(s, embedder, [docs_copy])
    assert r.updated == ["macron-to-press-trump-on-putin"]
    assert r.added == ["new"] and r.duplicates == ["copy"]
    assert not any(c.doc_id == "copy" for c in index.chunks)
    assert any("croissants" in c.text for c in index.chunks)

    (docs_copy / "new.md").unlink()
    index, r = update(s, embedder, [docs_copy])
    assert r.removed == ["new"]
    assert not any(c.doc_id == "new" for c in index.chunks)
    assert len(index.vectors) == len(index.chunks)
    # the incremental index searches exactly like one built from scratch
    fresh = _settings(tmp_path / "fresh")
    rebuilt, _ = update(fresh, embedder, [docs_copy])
    q = embedder.embed(["croissants", "civilian deaths"])
    assert [index.chunks[i].text for i in index.search(q, 3)[1][0]] == [
        rebuilt.chunks[i].text for i in rebuilt.search(q, 3)[1][0]
    ]


def test_other_settings_are_refused_on_load_and_rebuilt_on_index(tmp_path, embedder, docs_copy):
    s = _settings(tmp_path)
    update(s, embedder, [docs_copy])
    other = _settings(tmp_path, chunk_size=300)
    with pytest.raises(IndexMismatch, match="chunk_size 600 \\(now 300\\).*rag index"):
        load_index(other, embedder)
    index, r = update(other, embedder, [docs_copy])
    assert r.rebuilt and index.config.chunk_size == 300
    assert load_index(other, embedder).config.chunk_size == 300


def test_an_index_built_with_another_model_is_refused(tmp_path, embedder, docs_copy):
    s = _settings(tmp_path)
    update(s, embedder, [docs_copy])
    mpath = Path(s.index_dir) / "manifest.json"
    m = json.loads(mpath.read_text())
    m["embedding"]["model"] = "some-other-model"
    mpath.write_text(json.dumps(m))
    with pytest.raises(IndexMismatch, match="some-other-model"):
        load_index(s, embedder)


def test_missing_and_damaged_indexes_name_the_fix(tmp_path, embedder, docs_copy):
    s = _settings(tmp_path)
    with pytest.raises(IndexMissing, match="rag index seeds/"):
        load_index(s, embedder)
    update(s, embedder, [docs_copy])
    m = json.loads((Path(s.index_dir) / "manifest.json").read_text())
    vec = Path(s.index_dir) / m["files"]["vectors"]
    data = bytearray(vec.read_bytes())
    data[len(data) // 2] ^= 0xFF
    vec.write_bytes(bytes(data))
    with pytest.raises(
        IndexCorrupt, match=r"checksum.*run `rag index --rebuild --index-dir .*docs/$"
    ):
        load_index(s, embedder)
    vec.write_bytes(bytes(data[:100]))
    with pytest.raises(IndexCorrupt):
        load_index(s, embedder)
    (Path(s.index_dir) / "manifest.json").write_text("{not json")
    with pytest.raises(IndexCorrupt, match="not valid JSON"):
        load_index(s, embedder)
    # `rag index --rebuild` recovers
    index, _ = update(s, embedder, [docs_copy], rebuild=True)
    assert len(load_index(s, embedder).chunks) == len(index.chunks)


def test_bad_files_are_reported_and_lose_nothing(tmp_path, embedder, docs_copy):
    s = _settings(tmp_path)
    before, _ = update(s, embedder, [docs_copy])
    (docs_copy / "latin1.txt").write_bytes("caf\xe9 cr\xe8me".encode("latin-1"))
    (docs_copy / "binary.txt").write_bytes(b"\x00\x01\x02ELF")
    (docs_copy / "empty.md").write_text("   \n\n")
    (docs_copy / "ignored.docx").write_bytes(b"PK")
    index, r = update(s, embedder, [docs_copy])
    assert len(r.errors) == 3
    assert any("latin1.txt: not UTF-8" in e for e in r.errors)
    assert any("binary.txt: looks like a binary file" in e for e in r.errors)
    assert any("empty.md: the file is empty" in e for e in r.errors)
    assert len(index.chunks) == len(before.chunks)
    assert len(load_index(s, embedder).chunks) == len(before.chunks)


def test_an_empty_folder_or_unsupported_file_is_a_clear_error(tmp_path, embedder):
    s = _settings(tmp_path)
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no .*files in this folder"):
        update(s, embedder, [tmp_path / "empty"])
    (tmp_path / "x.docx").write_bytes(b"PK")
    with pytest.raises(InputError, match="unsupported file type .docx"):
        update(s, embedder, [tmp_path / "x.docx"])
    with pytest.raises(InputError, match="no such file"):
        update(s, embedder, [tmp_path / "nope"])


def test_html_and_pdf_documents(tmp_path, embedder):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "page.html").write_text(
        "<html><head><title>Summit notes</title><script>var x=1;</script></head>"
        "<body><h1>Summit notes</h1><p>The summit lasted three hours.</p></body></html>",
        encoding="utf-8",
    )
    (docs / "brief.pdf").write_bytes(_tiny_pdf("The delegation arrived on Tuesday."))
    s = _settings(tmp_path)
    index, r = update(s, embedder, [docs])
    assert sorted(r.added) == ["brief", "page"]
    texts = {c.doc_id: c.text for c in index.chunks}
    assert "The summit lasted three hours." in texts["page"]
    assert "var x" not in texts["page"]
    assert "delegation arrived on Tuesday" in texts["brief"]
    assert index.docs["page"].doc.title == "Summit notes"


def test_removing_a_document(tmp_path, embedder, docs_copy):
    s = _settings(tmp_path)
    update(s, embedder, [docs_copy])
    index = remove_document(s, embedder, "macron-to-press-trump-on-putin")
    assert set(index.docs) == {"trump-macron-split-on-trusting-putin"}
    assert {c.doc_id for c in load_index(s, embedder).chunks} == {
        "trump-macron-split-on-trusting-putin"
    }
    with pytest.raises(InputError, match="no document"):
        remove_document(s, embedder, "nope")


def _pdf(
    objs: list[bytes], size: int | None = None, xref: bool = True, trailer: bytes = b""
) -> bytes:
    """A PDF file of `objs` (object 1 the catalog), built by hand: no writer library needed.
    `size`, `xref` and `trailer` let a test break it on purpose."""
    out, offsets = b"%PDF-1.4\n", []
    for i, body in enumerate(objs, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % i + body + b"\nendobj\n"
    start = len(out)
    if xref:
        out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objs) + 1)
        out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    n = size if size is not None else len(objs) + 1
    out += b"trailer\n<< /Size %d /Root 1 0 R %s>>\nstartxref\n%d\n%%%%EOF\n" % (n, trailer, start)
    return out


def _tiny_pdf(text: str) -> bytes:
    """A one-page PDF with `text` in Helvetica, built by hand (no writer library needed)."""
    stream = f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET".encode()
    objs = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    return _pdf(objs)


def test_two_writers_lose_no_update(tmp_path, embedder, docs_copy):
    """The UI and a `rag index` in another terminal: the lock serializes load..save."""
    import threading

    s = _settings(tmp_path)
    update(s, embedder, [docs_copy])
    extra = []
    for i in range(2):
        d = tmp_path / f"more{i}"
        d.mkdir()
        (d / f"note{i}.txt").write_text(f"Note {i}\nThe delegation number {i} arrived late.\n")
        extra.append(d)
    threads = [threading.Thread(target=update, args=(s, embedder, [d])) for d in extra]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert {"note0", "note1"} <= set(load_index(s, embedder).docs)


def test_a_huge_paragraph_is_split_quickly_and_exactly():
    from rag.reading.chunking import chunk_document

    text = "Intro.\n" + "a. " * 20_000 + "\nThe end.\n"
    chunks = chunk_document("d", text, 600, 1)
    assert all(text[c.start : c.end] == c.text for c in chunks)


def test_sentences_are_embedded_once_at_index_time_and_survive_save_and_load(
    seed_settings, seed_index, embedder, tmp_path
):
    rows = sentence_rows(seed_index.chunks)
    assert seed_index.sentence_vectors.shape == (len(rows), embedder.dim)
    doc_id, start, end = rows[5]
    text = seed_index.docs[doc_id].doc.text[start:end]
    stored = seed_index.sentence_vector(doc_id, start)
    assert float(stored @ embedder.embed([text])[0]) > 0.999  # float16 on disk
    copy = _settings(tmp_path)
    store.save(seed_index, copy.index_dir)
    again = load_index(copy, embedder)
    np.testing.assert_array_equal(again.sentence_vectors, seed_index.sentence_vectors)
    # removing a document keeps the other's sentence vectors in step with its chunks
    again.replace_documents({doc_id}, [])
    rest = sentence_rows(again.chunks)
    assert again.sentence_vectors.shape[0] == len(rest) and all(d != doc_id for d, _, _ in rest)
    d2, s2, e2 = rest[3]
    t2 = again.docs[d2].doc.text[s2:e2]
    assert float(again.sentence_vector(d2, s2) @ embedder.embed([t2])[0]) > 0.999


class _Counting:
    """The real embedder, counting the texts it is asked to embed."""

    def __init__(self, inner):
        self.inner, self.name, self.dim, self.texts = inner, inner.name, inner.dim, []

    def embed(self, texts):
        self.texts += list(texts)
        return self.inner.embed(texts)


def test_a_question_embeds_only_itself(seed_settings, seed_index, embedder):
    from rag import Pipeline

    counting = _Counting(embedder)
    p = Pipeline(seed_settings, seed_index, counting)
    answer = p.ask("How many Ukrainians have been displaced?", mode="extractive")
    assert "14 million" in answer.text
    assert counting.texts == ["How many Ukrainians have been displaced?"]


def test_an_index_of_the_previous_format_is_read_then_upgraded_keeping_every_document(
    tmp_path, embedder, docs_copy
):
    s = _settings(tmp_path)
    update(s, embedder, [docs_copy])
    other = tmp_path / "notes"
    other.mkdir()
    (other / "note.txt").write_text(
        "The boiler was serviced on 3 March by Ana.\n", encoding="utf-8"
    )
    update(s, embedder, [other])
    folder = Path(s.index_dir)
    m = json.loads((folder / "manifest.json").read_text())
    (folder / m["files"].pop("sentences")).unlink()  # as version 1 wrote it
    m["checksums"] = {n: c for n, c in m["checksums"].items() if n in m["files"].values()}
    m["version"] = 1
    (folder / "manifest.json").write_text(json.dumps(m))
    old = load_index(s, embedder)
    assert old.sentence_vectors is None and len(old.docs) == 3  # still answers, embedding as before
    index, report = update(s, embedder, [docs_copy])
    assert report.rebuilt and len(index.docs) == 3 and index.sentence_vectors is not None
    assert json.loads((folder / "manifest.json").read_text())["version"] == 2


def test_two_folders_with_a_file_of_the_same_name_keep_both(tmp_path, embedder):
    """notes.md in two folders, indexed in one run (as a rebuild of several folders is):
    two documents, each chunk cut from its own text."""
    for folder, fact in (
        ("home", "The tomatoes went in on May 4."),
        ("work", "The release moved to June 9."),
    ):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "notes.md").write_text(f"# Notes\n\n{fact}\n", encoding="utf-8")
    s = _settings(tmp_path)
    index, report = update(s, embedder, [tmp_path / "home", tmp_path / "work"])
    assert sorted(report.added) == ["notes", "notes-2"]
    for idx in (index, load_index(s, embedder)):
        assert sorted(Path(e.doc.source).parent.name for e in idx.docs.values()) == ["home", "work"]
        assert len(idx.chunks) == 2
        for c in idx.chunks:
            assert idx.docs[c.doc_id].doc.text[c.start : c.end] == c.text


def _pdf_pages(text: str, pages: int) -> bytes:
    """A PDF of `pages` pages that all draw one content stream: a few kilobytes on disk that
    expand to pages * len(text) characters."""
    stream = f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET".encode()
    kids = " ".join(f"{5 + i} 0 R" for i in range(pages))
    objs = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [%s] /Count %d >>" % (kids.encode(), pages),
        b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ] + [
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 3 0 R "
        b"/Resources << /Font << /F1 4 0 R >> >> >>"
    ] * pages
    return _pdf(objs)


def test_a_huge_file_or_an_expanding_pdf_is_one_line_and_leaves_the_index_untouched(
    tmp_path, embedder, docs_copy
):
    s = _settings(tmp_path, max_file_chars=50_000)
    update(s, embedder, [docs_copy])
    before = (Path(s.index_dir) / "manifest.json").read_bytes()
    big = docs_copy / "huge.txt"
    with open(big, "wb") as f:
        f.truncate(200 * 1024 * 1024)  # 200 MB, sparse: refused by its size, never read
    (docs_copy / "bomb.pdf").write_bytes(_pdf_pages("Lorem ipsum dolor sit amet. " * 20, 400))
    assert (docs_copy / "bomb.pdf").stat().st_size < 100_000
    _, report = update(s, embedder, [docs_copy])
    errors = sorted(report.errors)
    assert len(errors) == 2 and all("\n" not in e for e in errors)
    assert errors[0].startswith("bomb.pdf: ") and "RAG_MAX_FILE_CHARS" in errors[0]
    assert errors[1].startswith("huge.txt: ") and "RAG_MAX_FILE_CHARS" in errors[1]
    assert (Path(s.index_dir) / "manifest.json").read_bytes() == before
