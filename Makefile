# cni-rdma — see README.md. Every target works from a fresh clone on Debian as root.
PY      ?= python3
VENV    ?= .venv
VPY     := $(VENV)/bin/python
PYTEST  := $(VPY) -m pytest
DEV_BIN := build/dev-bin

.PHONY: dev deps test test-fast test-unit test-host test-vm test-frozen demo build install uninstall bench clean

dev: $(VENV)/.installed $(DEV_BIN)/cni-rdma

$(VENV)/.installed: requirements-dev.txt
	$(PY) -m venv $(VENV)
	$(VPY) -m pip install -q --disable-pip-version-check -r requirements-dev.txt
	touch $@

$(DEV_BIN)/cni-rdma: tools/make_dev_bin.py cni_rdma/registry.py $(VENV)/.installed
	$(VPY) tools/make_dev_bin.py

# System packages the test tiers use (real peers and tools); installs only what is missing.
deps:
	tools/install-deps.sh

test-unit: dev
	$(PYTEST) tests/unit

test-host: dev deps
	$(PYTEST) tests/netns

# The inner loop: everything but the VM.
test-fast: dev deps
	$(PYTEST) tests/unit tests/netns

test: test-fast
