"""Errors a person can act on. Each message names the fix.

    RagError
    ├── InputError        a question or a document the engine cannot take
    ├── IndexProblem      no index, a corrupt one, or one built with other settings
    │   ├── IndexMissing
    │   ├── IndexCorrupt
    │   └── IndexMismatch
    ├── ModelError        a model file that is missing or unusable, or an LLM server down
    └── ModelBusy         the one model is busy with others' questions for longer than an
                          answer may wait (the quote then stands)

The CLI prints `str(err)` on one line and exits non-zero; the UI shows the same sentence.
"""


class RagError(Exception):
    """Base of every expected failure."""


class InputError(RagError):
    pass


class IndexProblem(RagError):
    """An index that cannot be used as it is (not named IndexError: that is a builtin)."""


class IndexMissing(IndexProblem):
    pass


class IndexCorrupt(IndexProblem):
    pass


class IndexMismatch(IndexProblem):
    pass


class ModelError(RagError):
    pass


class ModelBusy(RagError):
    pass
