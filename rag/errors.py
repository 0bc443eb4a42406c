"""Errors a person can act on. Each message names the fix.

    RagError
    ├── InputError        a question or a document the engine cannot take
    ├── IndexError_       no index, a corrupt one, or one built with other settings
    │   ├── IndexMissing
    │   ├── IndexCorrupt
    │   └── IndexMismatch
    └── ModelError        a model file that is missing or unusable, or an LLM server down

The CLI prints `str(err)` on one line and exits non-zero; the UI shows the same sentence.
"""


class RagError(Exception):
    """Base of every expected failure."""


class InputError(RagError):
    pass


class IndexError_(RagError):  # noqa: N801 - avoids shadowing the builtin IndexError
    pass


class IndexMissing(IndexError_):
    pass


class IndexCorrupt(IndexError_):
    pass


class IndexMismatch(IndexError_):
    pass


class ModelError(RagError):
    pass
