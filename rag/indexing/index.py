"""The index in memory: documents, their chunks, one unit vector per chunk searched with FAISS,
and one per sentence. `rag.indexing.store` saves and loads it; `rag.indexing.indexer` keeps it in step with
folders of documents."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..types import Chunk, Document

ANN_THRESHOLD = 20_000  # above this many chunks, HNSW instead of exact search
EF_SEARCH = 200  # HNSW search breadth: recall@10 0.95 against exact search in `rag bench`


@dataclass(frozen=True)
class IndexConfig:
    """What an index was built with; an index is only used with the same config."""

    embed_model: str
    dim: int
    chunk_size: int
    chunk_overlap: int
    reading: int = 1  # how text was read into sentences (rag.reading.sentences.READING)


@dataclass
class DocEntry:
    doc: Document
    duplicate_of: str = ""  # doc_id of the document with the same content, if any


@dataclass
class Index:
    config: IndexConfig
    docs: dict[str, DocEntry] = field(default_factory=dict)
    chunks: list[Chunk] = field(default_factory=list)
    vectors: np.ndarray | None = None
    generation: int = 0
    roots: list[str] = field(default_factory=list)  # absolute paths `rag index` was given
    _faiss: object = None
    # one row per sentence_rows(chunks); None for an index built in memory without them
    sentence_vectors: np.ndarray | None = None
    _rows: dict | None = None

    def __post_init__(self):
        if self.vectors is None:
            self.vectors = np.zeros((0, self.config.dim), dtype=np.float32)

    def sentence_vector(self, doc_id: str, start: int) -> np.ndarray | None:
        """The stored vector of the sentence starting at `start` in `doc_id`, if any."""
        if self.sentence_vectors is None:
            return None
        if self._rows is None:
            self._rows = {(d, a): i for i, (d, a, _) in enumerate(sentence_rows(self.chunks))}
        i = self._rows.get((doc_id, start))
        return None if i is None else self.sentence_vectors[i].astype(np.float32)

    # -- queries ------------------------------------------------------------------------
    @property
    def faiss_index(self):
        if self._faiss is None:
            self._faiss = build_faiss(self.vectors)
        return self._faiss

    def search(self, qvecs: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-k (scores, ids) by inner product; ids of -1 mean fewer than k chunks."""
        k = max(1, min(k, len(self.chunks)))
        if not self.chunks:
            return np.zeros((len(qvecs), 0), np.float32), np.zeros((len(qvecs), 0), np.int64)
        return self.faiss_index.search(np.ascontiguousarray(qvecs, dtype=np.float32), k)

    def chunk_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {d: 0 for d in self.docs}
        for c in self.chunks:
            counts[c.doc_id] += 1
        return counts

    # -- changes ------------------------------------------------------------------------
    def replace_documents(
        self, remove: set[str], add: list[tuple[Document, list[Chunk], np.ndarray, np.ndarray]]
    ) -> None:
        """Drop the documents in `remove`, then add (document, chunks, chunk vectors, sentence
        vectors in sentence_rows(chunks) order) for each of `add`."""
        keep = [i for i, c in enumerate(self.chunks) if c.doc_id not in remove]
        rows = sentence_rows(self.chunks)
        keep_rows = [i for i, (d, _, _) in enumerate(rows) if d not in remove]
        chunks = [self.chunks[i] for i in keep]
        parts = [self.vectors[keep]] if keep else []
        old = self.sentence_vectors
        sparts = [old[keep_rows]] if keep_rows and old is not None else []
        for doc_id in remove:
            self.docs.pop(doc_id, None)
        for doc, doc_chunks, vecs, svecs in add:
            self.docs[doc.doc_id] = DocEntry(doc)
            chunks.extend(doc_chunks)
            if len(doc_chunks):
                parts.append(vecs)
                sparts.append(svecs)
        self.chunks = chunks
        self.vectors = (
            np.concatenate(parts).astype(np.float32)
            if parts
            else np.zeros((0, self.config.dim), np.float32)
        )
        self.sentence_vectors = (
            np.concatenate(sparts).astype(np.float16)
            if sparts
            else np.zeros((0, self.config.dim), np.float16)
        )
        self._faiss = None
        self._rows = None


def sentence_rows(chunks: list[Chunk]) -> list[tuple[str, int, int]]:
    """(doc_id, start, end) of every sentence of `chunks`, each once, in the order first met:
    the rows of `Index.sentence_vectors`. A document's rows are contiguous when its chunks are."""
    seen: set[tuple[str, int]] = set()
    out = []
    for c in chunks:
        for a, b in c.sentences:
            if (c.doc_id, a) not in seen:
                seen.add((c.doc_id, a))
                out.append((c.doc_id, a, b))
    return out


def build_faiss(vectors: np.ndarray):
    import faiss

    # one query at a time: OpenMP threads only add start-up and busy-waiting (24 ms -> 0.4 ms
    # for 10k chunks under load in `rag bench`)
    faiss.omp_set_num_threads(1)

    dim = vectors.shape[1]
    if len(vectors) > ANN_THRESHOLD:
        index = faiss.IndexHNSWFlat(dim, 32, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = 80
        index.hnsw.efSearch = EF_SEARCH
    else:
        index = faiss.IndexFlatIP(dim)
    if len(vectors):
        index.add(np.ascontiguousarray(vectors, dtype=np.float32))
    return index
