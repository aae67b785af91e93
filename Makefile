# The two commands of the README: `make demo` (the main job on the bundled sample) and `make test`.
PYTHON ?= python3
PIP = $(PYTHON) -m pip

.PHONY: install demo test check-export check-readme readme bench bench-unpack

install:  ## the package and its dev tools (the local CPU torch wheel first where torch is missing)
	@$(PYTHON) -c "import torch" 2>/dev/null || $(PIP) install torch==2.13.0
	$(PIP) install -q -e ".[dev]"

demo: install  ## unpack the bundled sample (verified), index it, load one epoch with 2 workers
	rm -rf demo_data
	fast_amass_unpack -n 2 --verify --checksums sample_data/checksums.json sample_data demo_data
	$(PYTHON) sample_data/demo.py demo_data

test: install check-export check-readme  ## every test: the notebooks, then tests/
	nbdev_test --path nbs
	$(PYTHON) -m pytest tests -q

check-export:  ## fail when nbdev_export would change llamass/ (notebooks and package out of sync)
	@snapshot=$$(mktemp -d) && cp -r llamass $$snapshot/ && nbdev_export && \
	if diff -r -x __pycache__ $$snapshot/llamass llamass >/dev/null; then rm -rf $$snapshot; \
	else diff -r -x __pycache__ $$snapshot/llamass llamass | head -20; rm -rf $$snapshot; \
	echo "llamass/ was out of sync with nbs/: nbdev_export changed it; review and commit the result"; exit 1; fi

check-readme:  ## fail when README.md is not what nbs/index.ipynb renders to
	$(PYTHON) tests/readme.py --check

readme:  ## write README.md from nbs/index.ipynb (Quarto is not needed)
	$(PYTHON) tests/readme.py

bench: install  ## loader throughput table (benchmarks/)
	$(PYTHON) benchmarks/bench_loaders.py

bench-unpack: install  ## unpacking throughput table (benchmarks/)
	$(PYTHON) benchmarks/bench_unpack.py
