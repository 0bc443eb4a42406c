"""Models: the language model that writes (generate: llama.cpp in this process; openai_llm: a
server), the reader that judges with next-token probabilities (reader), and the packaged GGUF
files (models). Each is a narrow door: plain values in, text or numbers out.

May import: the shared vocabulary and reading's word tools (rag.reading.terms); never the
index or answering.
"""
