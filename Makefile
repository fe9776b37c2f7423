# Two entry points: `make demo` runs the default study end to end, `make test` runs the checks;
# `make hierarchical` runs the source-level study in studies/hierarchical, `make deep` the
# deep-submodel study in studies/deep.
# Both build the pinned virtual environment first (.venv, torch 2.13.0 CPU build).
VENV := .venv
PYTHON ?= python3
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

.PHONY: setup demo hierarchical deep example-sklearn example-torch test lint clean

$(VENV)/.installed: requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install -q --upgrade pip
	$(VENV)/bin/python -m pip install -q -r requirements.txt
	$(VENV)/bin/python -m pip install -q --no-deps -e .
	touch $@

setup: $(VENV)/.installed

demo: setup
	dvc repro
	@cat results/metrics.json

hierarchical: setup
	cd studies/hierarchical && dvc repro
	@sed -n '/^## Hierarchical study/,/^### Top sources/p' studies/hierarchical/results/report.md

deep: setup
	cd studies/deep && dvc repro
	@cat studies/deep/results/metrics.json studies/deep/results/validation.json

example-sklearn: setup
	cd examples/sklearn_mislabel && dvc repro
	@cat examples/sklearn_mislabel/results/metrics.json

example-torch: setup
	cd examples/torch_backdoor && dvc repro
	@cat examples/torch_backdoor/results/metrics.json

lint: setup
	ruff check src tests benchmarks
	ruff format --check src tests benchmarks
	snakemake --lint
	cd studies/hierarchical && snakemake -s ../../Snakefile --lint
	cd studies/deep && snakemake -s ../../Snakefile --lint

test: lint
	pytest

clean:
	rm -rf results data/prepared logs .snakemake studies/*/results studies/*/data/prepared studies/*/logs studies/*/.snakemake examples/*/results examples/*/data examples/*/logs examples/*/.snakemake
