# make demo: venv + install + the whole pipeline on the shipped model.  make test: venv + install + tests.
# make test-fast: the tests that convert nothing (under 3 minutes).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
# Where torch comes from: PyTorch's CPU-only index (PyPI's Linux x86-64 torch is the CUDA build: gigabytes of
# nvidia-* packages). Empty (`make venv TORCH_INDEX=`): pip's own index. pip's configured find-links still count, so
# a machine that holds the pinned wheel locally installs it from there (after a few seconds of retries if the index
# cannot be reached).
TORCH_INDEX ?= https://download.pytorch.org/whl/cpu
# Debian ships Fashion-MNIST; without it vit-edge falls back to the 1,000 test images it bundles.
FMNIST := /usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz
# The SSH bench tests start a real sshd on loopback (they skip, saying so, where it cannot be installed).
SYSTEM_PACKAGES := dataset-fashion-mnist openssh-server openssh-client

.PHONY: demo test test-fast docs-check venv system-packages clean lock

venv: $(STAMP)

$(STAMP): pyproject.toml constraints.txt scripts/check_env.py
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch first, pinned, alone from TORCH_INDEX (its dependencies next, from pip's own index): the CPU build,
	# which the later installs keep, since 2.13.0+cpu is the torch==2.13.0 that constraints.txt asks for. Where
	# the index cannot be reached, pip warns, retries for a few seconds and takes a wheel from its find-links.
	$(PY) -m pip install -q -c constraints.txt --no-deps $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX)) torch
	$(PY) -m pip install -q -c constraints.txt torch
	$(PY) -m pip install -q -c constraints.txt -e '.[all,executorch,vela,dev]'
	# real timm for the golden tests, without its torchvision (a CUDA build on PyPI): tests/timm_import.py
	$(PY) -m pip install -q -c constraints.txt --no-deps timm
	$(PY) scripts/check_env.py
	touch $(STAMP)

system-packages:
	@if [ -f $(FMNIST) ] && [ -x /usr/sbin/sshd ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		(apt-get install -y -qq $(SYSTEM_PACKAGES) >/dev/null 2>&1 || \
		 (apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq $(SYSTEM_PACKAGES) >/dev/null 2>&1)) || \
		echo "note: could not install $(SYSTEM_PACKAGES); bundled test images used, SSH tests skipped"; \
	else echo "note: apt-get install $(SYSTEM_PACKAGES) for the full test set and the SSH tests"; fi

demo: $(STAMP) system-packages
	$(PY) scripts/demo.py

# The suite's wall time is printed at the end (the budget is 20 minutes on 2 cores; --durations says where it goes).
# TEST_WORKERS pytest-xdist processes, a test file each at a time (module fixtures export once; the session ones
# once per worker); TEST_WORKERS=0 runs in this process.
TEST_WORKERS ?= 2
test: $(STAMP) system-packages
	@start=$$(date +%s); $(PY) -m pytest -q -p no:cacheprovider -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder --durations=25; \
	status=$$?; \
	echo "make test: $$(( $$(date +%s) - start )) s on $$(nproc) cores"; exit $$status

# Under 3 minutes: the architecture (import contract, mypy, ruff), the pure functions and the unit tests; no
# conversion. `make test` runs everything, these included.
test-fast: $(STAMP)
	$(PY) -m pytest -q -p no:cacheprovider -m "not slow" tests/fast tests/unit tests/hostile

# Every command the README and docs/ show, run in a fresh folder, the ones that train for minutes included
# (make test runs the rest of them).
docs-check: $(STAMP) system-packages
	VIT_EDGE_DOCS_FULL=1 $(PY) -m pytest -q -p no:cacheprovider tests/integration/test_docs_commands_run.py

# Re-pin after a tested upgrade: writes the versions in .venv to constraints.txt.
lock: $(STAMP)
	$(PY) -m pip freeze --exclude-editable | grep -v '^-e' > constraints.txt

clean:
	rm -rf $(VENV) artifacts .pytest_cache
