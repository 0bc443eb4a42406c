"""The Gradio chat UI over `rag`. Importing it is for running the UI (see ui/app.py)."""

import os

# Gradio reads this when it is imported: no telemetry or version checks from an offline app.
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
# gradio imports huggingface_hub, which reads this once, at import: never ask the Hub
os.environ.setdefault("HF_HUB_OFFLINE", "1")
