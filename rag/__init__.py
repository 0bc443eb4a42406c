"""Offline question answering over your own documents, with every claim cited to its passage.

    >>> from rag import Settings, open_pipeline
    >>> answer = open_pipeline(Settings.load()).ask("What did Macron say about China?")  # doctest: +SKIP
    >>> print(answer.text, [c.quote for c in answer.citations])  # doctest: +SKIP

(Not run as a doctest: it needs `rag index seeds/` first and loads both models.)
"""

from .answering.pipeline import Pipeline
from .answering.query import Query, check_question, retrieval_query
from .errors import (
    IndexCorrupt,
    IndexMismatch,
    IndexMissing,
    IndexProblem,
    InputError,
    ModelBusy,
    ModelError,
    RagError,
)
from .indexing.indexer import IndexReport, load_index, remove_document, update
from .loader import check_models, make_generator, make_models, open_pipeline
from .reading.ingest import SUPPORTED as SUPPORTED_TYPES
from .settings import Settings
from .types import Answer, Chunk, Citation, Document, Evidence, Passage

__all__ = [
    "Answer",
    "Chunk",
    "Citation",
    "Document",
    "Evidence",
    "IndexCorrupt",
    "IndexMismatch",
    "IndexMissing",
    "IndexProblem",
    "IndexReport",
    "InputError",
    "ModelBusy",
    "ModelError",
    "Passage",
    "Pipeline",
    "Query",
    "RagError",
    "SUPPORTED_TYPES",
    "Settings",
    "check_question",
    "load_index",
    "check_models",
    "make_generator",
    "make_models",
    "open_pipeline",
    "remove_document",
    "retrieval_query",
    "update",
]
