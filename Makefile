# Two commands on a fresh machine:
#   make demo   set up, build a tiny model, run the job on the bundled example (no network)
#   make test   set up, lint, type-check and run the whole test suite
VENV ?= .venv
VLLM_VENV ?= .venv-vllm
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
# Token auth turns on by itself when ~/.ray/auth_token exists; local runs choose explicitly.
export RAY_AUTH_MODE ?= disabled
export HF_HUB_OFFLINE ?= 1

.PHONY: setup demo test test-vllm lint clean

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	# torch first and pinned: pip takes the CPU build here instead of a multi-GB CUDA one.
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -e '.[test]'
	touch $@

setup: $(VENV)/.installed

demo: setup
	$(PY) -m vlworkers.tiny models/tiny-deepseek-vl
	$(PY) -m manifests.examples.demo demo
	$(PY) jobs/caption.py demo/manifest.parquet --model models/tiny-deepseek-vl \
		--max-new-tokens 24 --overwrite
	@echo "--- a few rows of demo/manifest.captions (random tiny model: the text is noise) ---"
	$(PY) -m jobs.peek demo/manifest.captions -n 6

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

test: lint
	$(PY) -m pytest -ra
	$(MAKE) test-vllm

# The vLLM engine end to end, in its own venv: vLLM's CPU build beside PyPI's torch.
test-vllm:
	VLLM_VENV=$(VLLM_VENV) bash scripts/setup-vllm-venv.sh
	$(VLLM_VENV)/bin/python -m pytest tests/vllm -ra

clean:
	rm -rf demo models
