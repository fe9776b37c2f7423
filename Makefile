# Two entry points: `make demo` runs the default study end to end, `make test` runs the whole
# suite (what CI runs); `make check` is the contributors' fast tier (lint, unit tests, one tiny
# workflow run: under 3 minutes); `make docs` builds the documentation site (site/), every
# warning an error;
# `make hierarchical` runs the source-level study in studies/hierarchical, `make deep` the
# deep-submodel study in studies/deep, `make two-stage` the two-stage design in studies/two-stage.
# Both build the pinned virtual environment first (.venv, torch 2.13.0 CPU build).
VENV := .venv
PYTHON ?= python3
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
export NO_MKDOCS_2_WARNING := 1

.PHONY: setup demo hierarchical deep two-stage example-sklearn example-torch check test lint docs browser screenshots measured clean

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

two-stage: setup
	cd studies/two-stage && dvc repro
	@sed -n '/^## Two-stage study/,/^## Summary/p' studies/two-stage/results/report.md

example-sklearn: setup
	cd examples/sklearn_mislabel && dvc repro
	@cat examples/sklearn_mislabel/results/metrics.json

example-torch: setup
	cd examples/torch_backdoor && dvc repro
	@cat examples/torch_backdoor/results/metrics.json

lint: setup
	ruff check src tests benchmarks docs
	ruff format --check src tests benchmarks docs
	snakemake --lint
	for study in studies/hierarchical studies/deep studies/two-stage examples/sklearn_mislabel examples/torch_backdoor; do \
		(cd $$study && snakemake -s ../../Snakefile --lint) || exit 1; \
	done

# a broken link, a renamed function or a missing results file fails the build
docs: setup
	mkdocs build --strict --quiet

# Debian's Chromium, for the test that renders the built site (tests/test_docs_site.py);
# installed when missing and this is root with apt, else that test skips (it fails in CI)
browser:
	@command -v chromium >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } || \
		echo "make browser: Chromium not installed; tests/test_docs_site.py will skip"

# the front page and a tutorial as headless Chromium renders them, kept in site/screenshots/
screenshots: docs browser
	AME_SCREENSHOTS=$(CURDIR)/site/screenshots pytest -q tests/test_docs_site.py

# rerun every benchmark the docs quote whose code changed since it ran (commit the new results)
measured: setup
	python benchmarks/stale.py --run

# the markers are registered in pyproject.toml; `smoke` is the one tiny end-to-end run
check: lint docs
	pytest -m "smoke or not (slow or slurm or statistical)"

# two workers, one test file each at a time (a file's module fixtures are built once); the
# session's committed tiny study is built once for both (tests/conftest.py)
test: lint docs browser
	pytest -n 2 --dist loadfile

clean:
	rm -rf site results data/prepared logs .snakemake studies/*/results studies/*/data/prepared studies/*/logs studies/*/.snakemake examples/*/results examples/*/data examples/*/logs examples/*/.snakemake
