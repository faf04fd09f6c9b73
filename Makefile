# mvsim: `make run` (set-up + default sweep + figures), `make test` (set-up + test suite).
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
AGAINST ?= ac84aba

.PHONY: run test bench bench-k bench-blocks bench-rejections bench-solvers bench-sweep study install clean

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

# The architecture (layers contract in pyproject.toml) and lint first: they take seconds. Then the
# suite, one worker per core, each test file on one worker (its module fixtures run once), the
# heaviest files first (tests/conftest.py; xdist's own reorder is by test count, not time).
test: $(STAMP)
	$(VENV)/bin/lint-imports
	$(VENV)/bin/ruff check mvsim tests benchmarks docs/scripts
	$(PY) -m pytest -q -n auto --dist loadfile --no-loadscope-reorder

# Step FLOP/s, then the pipeline at chunks 1 and 2 against AGAINST (default ac84aba, the last commit on Euler
# steps for every method; c6b334f is the last fixed-step one), in a
# temporary worktree, same run), into benchmarks/results.json (replaced only when all parts ran).
bench: $(STAMP)
	rm -f benchmarks/results.new.json
	$(PY) benchmarks/steps.py --chunk 2 --out benchmarks/results.new.json
	if git rev-parse -q --verify '$(AGAINST)^{commit}' >/dev/null; then against='--against $(AGAINST)'; fi; \
	$(PY) benchmarks/pipeline.py --chunks 1,2 --seeds 2 $$against --out benchmarks/results.new.json
	$(PY) benchmarks/report.py benchmarks/results.new.json
	mv benchmarks/results.new.json benchmarks/results.json

# make run's sweep here against AGAINST, alternating, warm compile caches (about 10 min on 2 cores).
bench-sweep: $(STAMP)
	$(PY) benchmarks/sweep_wall.py --against $(AGAINST) --rounds 2 --out benchmarks/results_sweep.json

# Accuracy against cost of each step rule (Euler at delta, Heun and Bogacki-Shampine at rtol; 2 seeds of
# the default, each method to its horizon against a tight reference): benchmarks/results_solvers.json and
# the README's figure docs/figures/solver_front.png. About 15 min on 2 cores.
bench-solvers: $(STAMP)
	$(PY) benchmarks/solvers.py --seeds 2 --out benchmarks/results_solvers.json --fig docs/figures/solver_front.png

# One gradient of each method, whole batch against sample blocks (train.n_blocks), at k = 10-80:
# benchmarks/results_blocks.json. About 5 min on 2 cores.
bench-blocks: $(STAMP)
	$(PY) benchmarks/blocks.py --out benchmarks/results_blocks.json

# SL's attempted and rejected steps per half-decade of GD time, with and without the predictive limit
# (one seed at k = 10, 20, 40): benchmarks/results_rejections.json. About 8 min on 2 cores.
bench-rejections: $(STAMP)
	$(PY) benchmarks/rejections.py --k 10,20,40 --out benchmarks/results_rejections.json

# Cost per step and FLOP/s at each k of the study (30 steps per method, one seed), into
# benchmarks/results_k.json (one section per k).
bench-k: $(STAMP)
	for k in 10 20 40 80; do \
	  $(PY) benchmarks/steps.py --k $$k --chunk 1 --max-steps 30 --out benchmarks/results_k$$k.json || exit 1; \
	done

# The k study (docs/results.md, "Toward large k"): one sweep per k and the (k, q, sigma_0) map, then
# the tables and figures in results/scaling. Hours on a 2-core CPU; each sweep resumes if interrupted.
study: $(STAMP)
	for name in k20 k40 k80 map_k10_q3 map_k10_q4 map_k20_q3 map_k20_q4; do \
	  $(PY) -m mvsim.sweep --config experiments/$$name.toml --out results/$$name || exit 1; \
	done
	$(PY) -m mvsim.scaling --study results/default results/k20 results/k40 results/k80 \
	  --map results/map_k10_q3 results/map_k10_q4 results/map_k20_q3 results/map_k20_q4 --out results/scaling

clean:
	rm -rf $(VENV) results .pytest_cache .hypothesis
