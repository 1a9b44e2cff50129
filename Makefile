# normlab: the commands a user needs. Every target creates the virtual environment on demand.
PY      := .venv/bin/python
CONFIG  ?= configs/quickstart.yaml
FASHION_MNIST_DIR := /usr/share/datasets/fashion-mnist
export WANDB_MODE ?= offline

.PHONY: train test test-all test-cluster bench data mutate clean

.venv/installed: requirements.txt pyproject.toml
	test -x $(PY) || python3 -m venv .venv
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt
	$(PY) -m pip install -q --no-deps -e .
	touch $@

# The default data set (Fashion-MNIST; the test tiers train on it too) comes from Debian's package when we can install it; the data
# module falls back to data/ and torchvision's download on its own and says so if all fail.
data:
	@if [ ! -f $(FASHION_MNIST_DIR)/train-images-idx3-ubyte.gz ] && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing Debian's dataset-fashion-mnist"; \
		(apt-get install -y -q dataset-fashion-mnist >/dev/null 2>&1 || \
		 (apt-get update -q >/dev/null && apt-get install -y -q dataset-fashion-mnist >/dev/null)) || \
		echo "could not install dataset-fashion-mnist; the data module will try data/ and a download"; \
	fi

train: .venv/installed data
	.venv/bin/lightning fit --config $(CONFIG)

test: .venv/installed data
	$(PY) -m pytest -q -m "not slow and not cluster"

test-all: .venv/installed data
	$(PY) -m pytest -q -m "not cluster"

# The SLURM tier: brings up a one-node cluster on this machine (root, Debian: tools/slurm_cluster.sh),
# then submits real sweeps to it. The jobs run this clone's .venv/bin/python in this directory.
test-cluster: .venv/installed
	tools/slurm_cluster.sh
	$(PY) -m pytest -q -m cluster

bench: .venv/installed
	$(PY) -m bench

# Mutation testing (not part of `make test` or CI; hours on 2 cores): each module's mutants against its own
# tests, results in build/mutate/, kill rates in tests/MUTATION.md. `make mutate MODULES="optim norms"`
# runs some; `MODULES=callbacks=callbacks/explosion.py` narrows one to some of its files.
MUTMUT_VERSION := 3.8.1
MODULES ?=
mutate: .venv/installed data
	$(PY) -m pip install -q mutmut==$(MUTMUT_VERSION)
	$(PY) -m tests.mutate $(MODULES)

clean:
	rm -rf runs lightning_logs wandb .pytest_cache build/mutate
