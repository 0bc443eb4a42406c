"""Answering: the question read once (query, answer_type, language), passages and sentences
found for it (retrieve), what the rules make of them (verify), the fitted confidence
(confidence, confidence.json), the quote or checked rewrite (compose), and the pipeline that
runs these stages (pipeline).

May import: the index (rag.indexing), reading (rag.reading) and the shared vocabulary;
models only through their narrow doors, the `Reader` and `Generator` interfaces of rag.llm
(the models themselves are handed in by the caller).
"""
