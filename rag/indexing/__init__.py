"""The index: the embedder and the CPU it runs on (embed, cpu, export), the FAISS index with
BM25 and stored sentence vectors (index, store), the self-describing manifest (manifest), and
what brings an index up to date with a folder of documents (indexer).

May import: reading (rag.reading) and the shared vocabulary; never answering or models.
"""
