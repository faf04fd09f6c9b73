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

# Step FLOP/s, then the pipeline at chunks 1 and 2 against the last fixed-step commit (c6b334f, in a
# temporary worktree, same run), into benchmarks/results.json (replaced only when all parts ran).
bench: $(STAMP)
	rm -f benchmarks/results.new.json
	$(PY) benchmarks/steps.py --chunk 2 --out benchmarks/results.new.json
	if git rev-parse -q --verify 'c6b334f^{commit}' >/dev/null; then against='--against c6b334f'; fi; \
	$(PY) benchmarks/pipeline.py --chunks 1,2 --seeds 2 $$against --out benchmarks/results.new.json
	$(PY) benchmarks/report.py benchmarks/results.new.json
	mv benchmarks/results.new.json benchmarks/results.json

clean:
	rm -rf $(VENV) results .pytest_cache .hypothesis
