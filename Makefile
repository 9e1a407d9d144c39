# Quick start: `make demo`, `make test`. Each creates .venv and installs what it needs first.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed

.PHONY: install demo test schemas clean

# pip keeps the compiled stable-diffusion.cpp wheel in its cache: only the first install builds it.
$(INSTALLED): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@

install: $(INSTALLED)

demo: $(INSTALLED)
	$(PY) examples/demo.py $(if $(MODEL),--model "$(MODEL)")

test: $(INSTALLED)
	$(PY) -m pytest
	node --test host_clients/node/test/

# schemas/ is generated from sidecar/protocol.py; tests/test_schemas.py fails when it is stale.
schemas: $(INSTALLED)
	$(PY) -m sidecar.schemas

clean:
	rm -rf $(VENV) out build/dist build/work
