# mvsim: `make run` (set-up + default sweep + figures), `make test` (set-up + test suite).
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: run test bench install clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

# The default sweep (experiments/default.toml, 16 seeds) into results/default, figures copied to figures/.
run: $(STAMP)
	$(PY) -m mvsim.sweep --config experiments/default.toml --seeds 16 --out results/default
	mkdir -p figures && cp results/default/figures/*.png figures/

test: $(STAMP)
	$(PY) -m pytest -q

bench: $(STAMP)
	$(PY) benchmarks/steps.py --chunk 2
	$(PY) benchmarks/bench.py --out benchmarks/results.json

clean:
	rm -rf $(VENV) results .pytest_cache .hypothesis
