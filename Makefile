# Two entry points (see README): `make demo` runs the main job, `make test` the whole suite.
# Each creates .venv and installs the project on first use; later runs reuse it
# (re-installing only when setup.cfg changes).

PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3)
VENV := .venv
STAMP := $(VENV)/.installed-$(shell cksum setup.cfg | cut -d' ' -f1)
PYTEST_WORKERS ?= 2

.PHONY: demo test install clean

$(STAMP): setup.cfg pyproject.toml
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade pip
	# The CPU build of torch, first, so that no later requirement pulls a CUDA build.
	$(VENV)/bin/python -m pip install --quiet torch==2.13.0
	$(VENV)/bin/python -m pip install --quiet -e ".[hf,test,offline]"
	rm -f $(VENV)/.installed-*
	touch $@

install: $(STAMP)

# 3 seeds of clean-data SFT -> GRPO beside an SFT-only control (docs/results.md); the
# workdir /tmp/jaxrl_llm/demo is started fresh on every call. DEMO_ARGS=--quick: a smoke run.
demo: $(STAMP)
	$(VENV)/bin/python experiments/demo_rlvr.py $(DEMO_ARGS)

test: $(STAMP)
	$(VENV)/bin/python -m pytest -n $(PYTEST_WORKERS) -q tests

clean:
	rm -rf $(VENV) build *.egg-info
