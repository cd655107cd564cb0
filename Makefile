# make demo: venv + install + the whole pipeline on the shipped model.  make test: venv + install + tests.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
# Debian ships Fashion-MNIST; without it vit-edge falls back to the 1,000 test images it bundles.
FMNIST := /usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz

.PHONY: demo test venv fashion-mnist clean lock

venv: $(STAMP)

$(STAMP): pyproject.toml constraints.txt scripts/check_env.py
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch first, pinned: a range would let pip fetch a newer CUDA build (gigabytes).
	$(PY) -m pip install -q -c constraints.txt torch
	$(PY) -m pip install -q -c constraints.txt -e '.[all,dev]'
	$(PY) scripts/check_env.py
	touch $(STAMP)

fashion-mnist:
	@if [ -f $(FMNIST) ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		(apt-get install -y -qq dataset-fashion-mnist >/dev/null 2>&1 || \
		 (apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq dataset-fashion-mnist >/dev/null 2>&1)) || \
		echo "note: could not install dataset-fashion-mnist; using the bundled 1,000 test images"; \
	else echo "note: apt-get install dataset-fashion-mnist for the full test set; using the bundled 1,000 images"; fi

demo: $(STAMP) fashion-mnist
	$(PY) scripts/demo.py

test: $(STAMP) fashion-mnist
	$(PY) -m pytest -q

# Re-pin after a tested upgrade: writes the versions in .venv to constraints.txt.
lock: $(STAMP)
	$(PY) -m pip freeze --exclude-editable | grep -v '^-e' > constraints.txt

clean:
	rm -rf $(VENV) artifacts .pytest_cache
