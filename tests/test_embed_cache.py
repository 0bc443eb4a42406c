"""The embedding cache in front of the real MiniLM: bounded, and it forgets the least recently
used texts first, not everything at once."""

from __future__ import annotations

import numpy as np

from rag.indexing.embed import CachedEmbedder


class Counting:
    """The real embedder, counting the texts it is asked to embed."""

    def __init__(self, inner):
        self.inner, self.name, self.dim, self.seen = inner, inner.name, inner.dim, []

    def embed(self, texts):
        self.seen += texts
        return self.inner.embed(texts)


def test_a_full_cache_drops_the_least_recently_used_and_keeps_the_rest(embedder):
    model = Counting(embedder)
    cache = CachedEmbedder(model, size=3)
    a, b, c, d = ("Who won?", "How many were displaced?", "Where was the summit?", "When?")
    first = cache.embed([a, b, c])
    cache.embed([a])  # a is now the most recently used, b the least
    model.seen.clear()
    cache.embed([d])  # full: b goes
    cache.embed([a, c, d])
    assert model.seen == [d]  # a, c and d were still there
    again = cache.embed([b])
    assert model.seen == [d, b]  # b had gone, and came back
    np.testing.assert_allclose(again[0], first[1], atol=1e-5)  # alone, not in a batch
    assert len(cache._cache) == 3


def test_a_batch_larger_than_the_cache_is_still_embedded_whole_and_in_order(embedder):
    cache = CachedEmbedder(embedder, size=2)
    texts = ["one", "two", "three", "two", "four"]
    got = cache.embed(texts)
    np.testing.assert_allclose(got, embedder.embed(texts), atol=1e-6)
    assert list(cache._cache) == ["three", "four"]
    assert cache.embed([]).shape == (0, embedder.dim)
