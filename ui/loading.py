"""The language models while they load in the background, for the UI's service: the server
answers quotes at once, and anything asked of a model that is still loading waits for it."""

from __future__ import annotations

import logging
from concurrent.futures import Future

from rag import ModelError, RagError

log = logging.getLogger(__name__)


class Loading:
    """The generator or the reader while the models load in the background: anything asked of
    it waits for the load. A load that fails leaves no reader (the rules decide) and no writer
    (the quote stands), and the log says why."""

    def __init__(self, future: Future, which: int):
        self._future, self._which = future, which

    @property
    def ready(self) -> bool:
        return self._future.done()

    def model(self):
        """The loaded model (waiting for the load), or None if it failed."""
        try:
            return self._future.result()[self._which]
        except RagError as e:
            log.error("loading the models failed: %s", e)
            return None

    def __getattr__(self, name):
        model = self.model()
        if model is None:
            raise ModelError("the model could not be loaded (the server log says why)")
        return getattr(model, name)

    def judge(self, question, candidates, *args, **kwargs):
        model = self.model()
        return None if model is None else model.judge(question, candidates, *args, **kwargs)

    def expected_wait(self) -> float:
        """While the model loads, nothing is known of its queue yet."""
        if not self._future.done():
            return 0.0
        model = self.model()
        return 0.0 if model is None else model.expected_wait()
