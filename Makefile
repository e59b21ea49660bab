# mbdl: `make run` sets everything up and runs the default experiment; `make test` sets up and runs the tests.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: setup run test test-slow bench clean chromium slurm

setup: $(STAMP)

# The pins in pyproject.toml take the CPU torch wheel (torch>=2.3,<2.14); an unpinned torch pulls a CUDA build.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

# The default experiment: ISTA and LISTA on the MBDL book's sparse-recovery setup, same number of iterations.
run: $(STAMP)
	$(BIN)/python -m mbdl --multirun method=model_based,unfolded method.iterations=5 trainer.enable_progress_bar=false

# The dashboard test opens the dashboard in a headless Chromium: Debian's package, installed when missing
# (needs root and apt; without them the test is skipped locally and fails under CI=true).
chromium:
	@command -v chromium >/dev/null 2>&1 || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null; } \
		|| echo "warning: could not install chromium; the dashboard test needs it" >&2

# The SLURM test starts a one-node cluster (scripts/single_node_slurm.py) from Debian's slurm-wlm and munge,
# installed when missing (~8 s; needs root and apt; without them the test is skipped locally and fails under CI=true).
slurm:
	@{ command -v slurmctld && command -v slurmd && command -v munged; } >/dev/null 2>&1 || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends slurm-wlm munge >/dev/null; } \
		|| echo "warning: could not install slurm-wlm and munge; the SLURM test needs them" >&2

test: $(STAMP) chromium slurm
	$(BIN)/python -m pytest -n 2 --durations=10

# The long accuracy studies (excluded from `make test`).
test-slow: $(STAMP)
	$(BIN)/python -m pytest -m slow

# Benchmarks (docs/benchmarks.md); each writes its section of docs/results/benchmarks.md (~8 min idle).
bench: $(STAMP)
	$(BIN)/python scripts/bench_ista.py
	$(BIN)/python scripts/bench_operators.py
	$(BIN)/python scripts/bench_music.py
	$(BIN)/python scripts/bench_kalman.py
	$(BIN)/python scripts/bench_overhead.py
	$(BIN)/python scripts/bench_steps.py
	$(BIN)/python scripts/bench_precision.py
	$(BIN)/python scripts/bench_sweep.py --epochs 1

clean:
	rm -rf $(VENV) outputs/runs outputs/sweeps .pytest_cache
