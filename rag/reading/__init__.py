"""Reading documents: a file's text as people read it (ingest, html), its sentences and
paragraphs with exact offsets (sentences), what each unit is for (form), chunks of whole
sentences (chunking), and the words and stems everything else matches on (terms).

May import: the shared vocabulary (rag.types, rag.errors, rag.settings) only; nothing that
indexes, answers or runs a model.
"""
