# subcell_hf developer commands. `make test` and `make demo` are the two the README promises.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
TORCH_VERSION ?= 2.13.0

.PHONY: install test demo cards bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# torch is pinned and installed first: an unpinned torch pulls several GB of CUDA wheels on CPU machines.
install: $(BIN)/python
	$(BIN)/pip install --quiet torch==$(TORCH_VERSION)
	$(BIN)/pip install --quiet -e ".[dev]"

test: install
	$(BIN)/python -m pytest -q tests

demo: install
	$(BIN)/python -m subcell_hf.demo --output demo_outputs

cards: install
	$(BIN)/python -m subcell_hf.hub.cards --output hub_cards

bench: install
	$(BIN)/python benchmarks/inference.py
	$(BIN)/python benchmarks/data.py
	$(BIN)/python benchmarks/embed.py

clean:
	rm -rf demo_outputs build dist *.egg-info .pytest_cache
