# subcell_hf developer commands. `make test` and `make demo` are the two the README promises.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
TORCH_VERSION ?= 2.13.0

.PHONY: install test demo cards bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# The install runs only when the venv is new or the package metadata changed (the stamp file records the last
# install; the package itself is installed editable, so code changes need no reinstall).
# torch is pinned and installed first: an unpinned torch pulls several GB of CUDA wheels on CPU machines.
STAMP := $(VENV)/.subcell_hf-installed

$(STAMP): $(BIN)/python setup.cfg pyproject.toml
	$(BIN)/pip install --quiet torch==$(TORCH_VERSION)
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest -q tests

demo: $(STAMP)
	$(BIN)/subcell-hf demo --output demo_outputs

cards: $(STAMP)
	$(BIN)/python -m subcell_hf.hub.cards --output hub_cards

bench: $(STAMP)
	$(BIN)/python benchmarks/inference.py
	$(BIN)/python benchmarks/data.py
	$(BIN)/python benchmarks/embed.py

clean:
	rm -rf demo_outputs build dist *.egg-info .pytest_cache
