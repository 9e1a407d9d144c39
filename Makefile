# Quick start: `make demo`, `make test`. Each creates .venv and installs what it needs first.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed
BINARY := dist/diffusion-sidecar

.PHONY: install demo test system-packages bench schemas binary packages lock clean

# Everything installs from requirements/*.lock, exact versions with their hashes (`make lock` writes
# them; docs/development.md says when). The build backends go first so that the two editable
# packages and the stable-diffusion-cpp-python sdist build without isolation, from hashed packages.
# pip keeps the compiled stable-diffusion.cpp wheel in its cache: only the first install builds it.
LOCKS := requirements/build-tools.lock requirements/all.lock
$(INSTALLED): $(LOCKS) pyproject.toml host_clients/python/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --require-hashes --no-deps -r requirements/build-tools.lock
	$(PY) -m pip install --quiet --require-hashes --no-deps --no-build-isolation -r requirements/all.lock
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e host_clients/python -e .
	$(PY) -m pip check
	touch $@

install: $(INSTALLED)

demo: $(INSTALLED)
	$(PY) examples/demo.py $(if $(MODEL),--model "$(MODEL)")

# Debian packages the binary's build and some tests need, each with a file that shows it installed:
# glslc and libvulkan-dev build ggml's Vulkan backend (without them the binary is CPU-only);
# mesa-vulkan-drivers is lavapipe, a software Vulkan GPU for tests/test_gpu.py; qemu-user runs the
# binary's native code on emulated older CPUs (tests/test_portable.py); strace watches which files
# the native library opens (tests/test_native_opens.py). apt-get needs root; elsewhere
# the tests that need a missing one are reported as skipped, with what to install, unless
# DIFFUSION_SIDECAR_REQUIRE_SYSTEM_TESTS=1 (.ci/run) makes that a failure.
SYSTEM_PACKAGES := glslc:/usr/bin/glslc libvulkan-dev:/usr/include/vulkan/vulkan.hpp \
	mesa-vulkan-drivers:/usr/share/vulkan/icd.d/lvp_icd.x86_64.json qemu-user:/usr/bin/qemu-x86_64 \
	strace:/usr/bin/strace
system-packages:
	@missing=; for entry in $(SYSTEM_PACKAGES); do [ -e "$${entry#*:}" ] || missing="$$missing $${entry%%:*}"; done; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ]; then \
	  export DEBIAN_FRONTEND=noninteractive; apt-get install -y $$missing || (apt-get update && apt-get install -y $$missing); \
	else echo "not root, cannot install$$missing: the tests that need them will be skipped (apt-get install$$missing)" >&2; fi

test: system-packages $(INSTALLED) $(BINARY)
	$(PY) -m pytest
	node --test host_clients/node/test/

# Benchmarks on the synthetic model (about 20 minutes on 2 cores): one table on stdout, raw figures
# in bench/results/latest.json. Not part of `make test`: nothing in them asserts a time.
bench: $(INSTALLED) $(BINARY)
	$(PY) -m bench

# schemas/ is generated from host_clients/python/diffusion_sidecar_protocol/types.py; tests/test_schemas.py fails when it is stale.
schemas: $(INSTALLED)
	$(PY) -m sidecar.schemas

# One executable with the native library inside, rebuilt when what it bundles changes: PyInstaller
# makes a folder (build/diffusion-sidecar.spec), build/pack_binary.py appends it to a small launcher
# (build/launcher.c) that unpacks it once per build into the user's cache and runs it from there.
# The library is the portable one (CPU variants chosen at run time), not the venv's -march=native
# build: build/native_library.py compiles it with cmake (about 25 minutes cold on 2 cores) into
# ~/.cache/diffusion-sidecar/native/, keyed by version and flags, and reuses it after that.
$(BINARY): $(INSTALLED) $(wildcard sidecar/*.py sidecar/*/*.py sidecar/*/*.json host_clients/python/diffusion_sidecar_protocol/*.py build/*.py build/*.spec build/*.c) | system-packages
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

# Regenerates requirements/*.lock from requirements/*.in and the two pyproject.toml files. Pins already
# in a lock are kept unless a changed requirement excludes them; `make lock UPGRADE=1` takes the
# newest versions that fit. uv runs from its own venv, itself installed from a hashed lock.
LOCK_VENV := .venv-lock
UV := $(LOCK_VENV)/bin/uv
$(UV): requirements/lock-tool.lock
	$(PYTHON) -m venv $(LOCK_VENV)
	$(LOCK_VENV)/bin/pip install --quiet --require-hashes --no-deps -r $<
	touch $@

UV_COMPILE = cd requirements && ../$(UV) pip compile --quiet --generate-hashes --python-version 3.11 \
	--python-platform x86_64-manylinux_2_28 --custom-compile-command "make lock" $(if $(UPGRADE),--upgrade) \
	--no-emit-package diffusion-sidecar --no-emit-package diffusion-sidecar-client
lock: $(UV)
	$(UV_COMPILE) build-tools.in -o build-tools.lock
	$(UV_COMPILE) all.in -c build-tools.lock -o all.lock
	$(UV_COMPILE) lock-tool.in -o lock-tool.lock

clean:
	rm -rf $(VENV) $(LOCK_VENV) out build/dist build/work build/native build/native-src dist
