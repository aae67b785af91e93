# The two commands of the README: `make demo` (the main job on the bundled sample) and `make test`.
PYTHON ?= python3
PIP = $(PYTHON) -m pip
# One stamp per interpreter, so a fresh venv in the same clone installs again; `.make/` ignores itself.
STAMPS := .make/$(shell $(PYTHON) -c "import hashlib, sys; print(hashlib.md5(sys.prefix.encode()).hexdigest()[:8])")
PACKAGE_FILES = setup.py settings.ini pyproject.toml
NOTEBOOKS ?= $(wildcard nbs/[0-9]*.ipynb) nbs/index.ipynb

.PHONY: install install-runtime demo test check-export check-readme readme outputs bench bench-unpack

install: $(STAMPS)/installed-dev  ## the package and its dev tools, again only when setup.py, settings.ini or pyproject.toml changed

install-runtime: $(STAMPS)/installed-runtime  ## the package and its runtime dependencies only

$(STAMPS)/installed-dev: $(PACKAGE_FILES)
	@mkdir -p $(STAMPS) && echo '*' > .make/.gitignore
	@$(PYTHON) -c "import torch" 2>/dev/null || $(PIP) install torch==2.13.0
	$(PIP) install -q -e ".[dev]"
	touch $@ $(STAMPS)/installed-runtime

$(STAMPS)/installed-runtime: $(PACKAGE_FILES)
	@mkdir -p $(STAMPS) && echo '*' > .make/.gitignore
	@$(PYTHON) -c "import torch" 2>/dev/null || $(PIP) install torch==2.13.0
	$(PIP) install -q -e .
	touch $@

demo: install-runtime  ## unpack the bundled sample (verified), index it, load one epoch with 2 workers
	rm -rf demo_data
	fast_amass_unpack --verify --checksums sample_data/checksums.json sample_data demo_data
	$(PYTHON) sample_data/demo.py demo_data

test: install check-export check-readme  ## every test: the notebooks, then tests/ (the README's code blocks among them)
	nbdev_test --path nbs
	$(PYTHON) -m pytest tests -q

check-export: install  ## fail when nbdev_export would change llamass/ (notebooks and package out of sync)
	@snapshot=$$(mktemp -d) && cp -r llamass $$snapshot/ && nbdev_export && \
	if diff -r -x __pycache__ $$snapshot/llamass llamass >/dev/null; then rm -rf $$snapshot; \
	else diff -r -x __pycache__ $$snapshot/llamass llamass | head -20; rm -rf $$snapshot; \
	echo "llamass/ was out of sync with nbs/: nbdev_export changed it; review and commit the result"; exit 1; fi

check-readme:  ## fail when README.md is not what nbs/index.ipynb renders to
	$(PYTHON) tests/readme.py --check

readme:  ## write README.md from nbs/index.ipynb (Quarto is not needed)
	$(PYTHON) tests/readme.py

outputs: install  ## run the chapters top to bottom and keep their outputs (NOTEBOOKS="nbs/08_synthetic.ipynb" for some)
	$(PYTHON) tests/chapter_outputs.py $(NOTEBOOKS)

bench: install  ## loader throughput table (benchmarks/)
	$(PYTHON) benchmarks/bench_loaders.py

bench-unpack: install  ## unpacking throughput table (benchmarks/)
	$(PYTHON) benchmarks/bench_unpack.py
