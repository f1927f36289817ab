# bearlab: `make app` serves the classifier, `make test` runs every test. Both build .venv first if needed.
SHELL := /bin/bash
PY := .venv/bin/python
PORT ?= 8866
MODEL ?=

.PHONY: app test sync readme docs docs-tool bench serve lab clean-venv learner-env web-runtime

# Debian packages, installed as root or through sudo: $(call apt,package)
apt = if [ "$$(id -u)" = 0 ]; then apt-get update -q && apt-get install -y -q $(1); \
      else sudo apt-get update -q && sudo apt-get install -y -q $(1); fi

# Debian's python3 makes virtual environments only with python3-venv (ensurepip) installed.
.venv/bin/python:
	@python3 -c 'import ensurepip, venv' 2>/dev/null || { command -v apt-get >/dev/null || \
	  { echo "python3 can't make a virtual environment: install your system's python3-venv package."; exit 1; }; \
	  $(call apt,python3-venv); }
	python3 -m venv .venv
	$(PY) -m pip install -q -U pip wheel setuptools

# The project, with what `make app` needs, on the newest fastai/fastcore/torch (torch and torchvision as pip resolves
# them: ~6 GB the first time). settings.ini asks for ranges; constraints.txt pins the versions development tests on,
# through PIP_CONSTRAINT, which (unlike -c) replaces any constraint file in the machine's own pip configuration.
.venv/.installed: .venv/bin/python setup.py settings.ini constraints.txt
	PIP_CONSTRAINT=constraints.txt $(PY) -m pip install -e .
	touch $@

# The dev extras: pytest, JupyterLab, execnb, playwright (driving Debian's chromium, never a downloaded browser).
.venv/.installed-dev: .venv/.installed
	PIP_CONSTRAINT=constraints.txt $(PY) -m pip install -e '.[dev]'
	touch $@

# nbdev 2, the last nbdev that reads settings.ini, needs fastcore 1, and fastai 2.8.8 and later need fastcore 2: the
# notebook tooling (nbdev_clean, nbdev_export, README, docs) lives apart, on fastai 2.8.7, bearlab's oldest supported.
NBDEV := .venv-nbdev/bin
.venv-nbdev/.installed: .venv/bin/python setup.py settings.ini constraints-nbdev.txt
	python3 -m venv .venv-nbdev
	$(NBDEV)/python -m pip install -q -U pip wheel setuptools
	PIP_CONSTRAINT=constraints-nbdev.txt $(NBDEV)/python -m pip install -e '.[dev,nbdev]'
	touch $@

/usr/bin/chromium:
	@$(call apt,chromium)

app: .venv/.installed
	@echo "bearlab app: http://127.0.0.1:$(PORT)"
	.venv/bin/bearlab app --port $(PORT) $(if $(MODEL),--model $(MODEL),)

# JupyterLab on this project's notebooks, from .venv (the dev install brings jupyterlab and the widgets' extension).
lab: .venv/.installed-dev
	.venv/bin/jupyter lab --notebook-dir=nbs $(if $(filter 0,$(shell id -u)),--allow-root,)

serve: .venv/.installed
	.venv/bin/bearlab serve $(if $(MODEL),--model $(MODEL),)

# Notebooks are the source of truth: cleaning and exporting them must change nothing that is committed.
sync: .venv-nbdev/.installed
	$(NBDEV)/nbdev_clean
	$(NBDEV)/nbdev_export
	$(NBDEV)/nbdev_clean --fname tools/docs.ipynb
	$(MAKE) --no-print-directory readme
	@git diff --exit-code --stat -- nbs bearlab tools README.md || { echo "Notebooks, library and README are out of sync: run 'make sync' and commit."; exit 1; }
	@test -z "$$(git status --porcelain --untracked-files=all -- bearlab tools)" || { git status --short -- bearlab tools; echo "Exported modules not committed."; exit 1; }

# The docs tooling is dev tooling, not part of the package: tools/docs.ipynb, exported to tools/docs.py outside bearlab/.
docs-tool: .venv-nbdev/.installed
	$(NBDEV)/python -c "from nbdev.export import nb_export; nb_export('tools/docs.ipynb', 'tools')"

# README.md from nbs/index.ipynb; also refreshes nbs/nbdev.yml and nbs/sidebar.yml (refresh_docs_config).
readme: docs-tool /usr/bin/pandoc
	$(NBDEV)/python -c "from tools.docs import build_readme; build_readme()"

# Pandoc (Debian's) turns the notebooks' Quarto markdown into the site's HTML, as it does inside Quarto.
/usr/bin/pandoc:
	@$(call apt,pandoc)

docs: docs-tool /usr/bin/pandoc
	$(NBDEV)/python -c "from tools.docs import build_site; build_site()"

# torch's OpenMP threads spin while waiting; with two notebooks or servers sharing 2 cores that is ~10x slower.
test: export OMP_WAIT_POLICY = PASSIVE
# The book's tutorial trains twice (about 5 minutes on one core): it runs beside the other notebooks and the quick tests.
# Notebooks and tests run in .venv, on the newest stack (tools/run_notebooks.py keeps nbdev_test's rules); the docs
# tooling's own notebook and test run in .venv-nbdev, on the oldest supported fastai.
QUICK_TESTS := tests/test_sgd.py tests/test_search.py tests/test_data.py
RUN_NBS := $(PY) tools/run_notebooks.py
test: .venv/.installed-dev .venv-nbdev/.installed /usr/bin/chromium /usr/bin/pandoc sync
	@book_log=$$(mktemp); $(RUN_NBS) nbs/tutorials/book.ipynb > $$book_log 2>&1 & book=$$!; \
	$(RUN_NBS) --skip '^(book|[_.])' && \
	$(NBDEV)/nbdev_test --path tools/docs.ipynb --timing && \
	.venv/bin/pytest $(QUICK_TESTS); rest=$$?; \
	wait $$book; b=$$?; echo "== nbs/tutorials/book.ipynb"; cat $$book_log; rm -f $$book_log; \
	test $$rest = 0 && test $$b = 0
	.venv/bin/pytest $(addprefix --ignore=,$(QUICK_TESTS) tests/test_docs.py)
	$(NBDEV)/pytest tests/test_docs.py

# A learner's environment: the newest fastai first, then bearlab, which must change none of fastai, fastcore or torch;
# then the quick tests and the book's tutorial there. .ci/run runs it after `make test`.
learner-env:
	bash tools/learner_env.sh

ORT_WEB := 1.31.1
ORT_DIR := bearlab/webpage/ort

# ONNX Runtime Web, which `bearlab export-web` ships in every site: only the two files the page loads (the plain
# WebAssembly backend, its JavaScript glue bundled in), from npm at the version bearlab.web.ORT_WEB pins. The npm
# package carries no license file: $(ORT_DIR)/LICENSE (MIT, Microsoft) is kept in git, and checked against package.json.
web-runtime:
	@command -v npm >/dev/null || { echo "make web-runtime needs npm: install Node.js (Debian: apt-get install npm)."; exit 1; }
	@grep -q "ORT_WEB = '$(ORT_WEB)'" bearlab/web.py || { echo "bearlab/web.py pins another ORT_WEB than $(ORT_WEB)."; exit 1; }
	tmp=$$(mktemp -d) && trap 'rm -rf $$tmp' EXIT && \
	  (cd $$tmp && npm pack --silent onnxruntime-web@$(ORT_WEB) >/dev/null && tar xzf onnxruntime-web-$(ORT_WEB).tgz) && \
	  grep -q '"license": "MIT"' $$tmp/package/package.json && \
	  cp $$tmp/package/dist/ort.wasm.bundle.min.mjs $$tmp/package/dist/ort-wasm-simd-threaded.wasm $(ORT_DIR)/
	@ls -l $(ORT_DIR)

bench: .venv/.installed-dev
	for f in bench/*.py; do echo "== $$f"; $(PY) $$f || exit 1; done

clean-venv:
	rm -rf .venv .venv-nbdev
