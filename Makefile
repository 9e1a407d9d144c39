# Quick start: `make demo`, `make test`. Each creates .venv and installs what it needs first.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed
BUILD_TOOLS := $(VENV)/.build-tools
BINARY := dist/diffusion-sidecar

.PHONY: install demo test bench schemas binary packages clean

# pip keeps the compiled stable-diffusion.cpp wheel in its cache: only the first install builds it.
$(INSTALLED): pyproject.toml host_clients/python/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e host_clients/python -e '.[test]'
	touch $@

install: $(INSTALLED)

demo: $(INSTALLED)
	$(PY) examples/demo.py $(if $(MODEL),--model "$(MODEL)")

# tests/test_portable.py runs the binary's native code on an emulated CPU without AVX-512.
QEMU := /usr/bin/qemu-x86_64
$(QEMU):
	apt-get install -y qemu-user || (apt-get update && apt-get install -y qemu-user)

test: $(INSTALLED) $(BINARY) $(QEMU)
	$(PY) -m pytest
	node --test host_clients/node/test/

# Benchmarks on the synthetic model (about 20 minutes on 2 cores): one table on stdout, raw figures
# in bench/results/latest.json. Not part of `make test`: nothing in them asserts a time.
bench: $(INSTALLED) $(BINARY)
	$(PY) -m bench

# schemas/ is generated from host_clients/python/diffusion_sidecar_protocol/types.py; tests/test_schemas.py fails when it is stale.
schemas: $(INSTALLED)
	$(PY) -m sidecar.schemas

$(BUILD_TOOLS): $(INSTALLED)
	$(PY) -m pip install --quiet -e '.[test,build]'
	touch $@

# One executable with the native library inside, rebuilt when what it bundles changes: PyInstaller
# makes a folder (build/diffusion-sidecar.spec), build/pack_binary.py appends it to a small launcher
# (build/launcher.c) that unpacks it once per build into the user's cache and runs it from there.
# The library is the portable one (CPU variants chosen at run time), not the venv's -march=native
# build: build/native_library.py compiles it with cmake (about 25 minutes cold on 2 cores) into
# ~/.cache/diffusion-sidecar/native/, keyed by version and flags, and reuses it after that.
$(BINARY): $(BUILD_TOOLS) $(wildcard sidecar/*.py sidecar/*/*.py sidecar/*.json host_clients/python/diffusion_sidecar_protocol/*.py build/*.py build/*.spec build/*.c)
	$(PY) build/native_library.py
	$(PY) -m PyInstaller --noconfirm --log-level WARN --distpath build/work/dist --workpath build/work build/diffusion-sidecar.spec
	$(PY) build/pack_binary.py build/work/dist/diffusion-sidecar build/launcher.c $@

binary: $(BINARY)

# What a host installs instead of this repository, beside the binary: the Python client's wheel
# (pure Python, needs only msgspec) and the Node client's tarball. `./`: npm reads a bare a/b as a
# GitHub repository.
packages: $(INSTALLED)
	$(PY) -m pip wheel --quiet --no-deps host_clients/python -w dist
	npm pack --silent --pack-destination dist ./host_clients/node

clean:
	rm -rf $(VENV) out build/dist build/work build/native build/native-src dist
