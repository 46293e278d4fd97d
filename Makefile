# The two commands a newcomer runs: `make demo` and `make test`. Both set up ./.venv first
# (idempotent: seconds when nothing changed; see tools/setup_env.py).
PY := .venv/bin/python

.PHONY: setup demo test benchmark
setup:
	python3 tools/setup_env.py

demo: setup
	$(PY) tools/demo.py

test: setup
	$(PY) -m pytest

benchmark: setup  # the evidence in README.md (CIFAR-10 and digits grids, then speed): about 3 h on 2 CPU cores
	$(PY) tools/benchmark.py --publish docs/benchmarks
