# `make demo` runs tagkit on the bundled demo catalogue; `make test` runs the tests.
# Both create (or reuse) a virtual environment in .venv with python3.12 and install tagkit into it.

PYTHON ?= python3.12
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.tagkit-installed
DEMO   := out/demo

.PHONY: demo test lint install clean

install: $(STAMP)

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --editable '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	rm -rf $(DEMO) && mkdir -p $(DEMO)
	@echo "== train on examples/demo/train.csv (400 labelled products, Persian and English)"
	$(BIN)/tagkit --db $(DEMO)/tagkit.db train examples/demo/train.csv
	@echo "== predict for 60 new product photos (titles for some of them in new.csv)"
	$(BIN)/tagkit --db $(DEMO)/tagkit.db predict examples/demo/new --products examples/demo/new.csv \
		--export csv -o $(DEMO)/predictions.csv
	head -n 6 $(DEMO)/predictions.csv
	@echo "== evaluate on examples/demo/test.csv (100 held-out products)"
	$(BIN)/tagkit --db $(DEMO)/tagkit.db eval examples/demo/test.csv
	$(BIN)/tagkit --db $(DEMO)/tagkit.db stats

lint: $(STAMP)
	$(BIN)/ruff check .

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q -ra -n auto

clean:
	rm -rf $(VENV) out .pytest_cache .ruff_cache
