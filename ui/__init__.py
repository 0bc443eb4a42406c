"""The Gradio chat UI over `rag`. Importing it is for running the UI (see ui/app.py)."""

import os

# Gradio reads this when it is imported: no telemetry or version checks from an offline app.
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
