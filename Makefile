# cni-rdma — see README.md. Every target works from a fresh clone on Debian as root.
PY      ?= python3
VENV    ?= .venv
VPY     := $(VENV)/bin/python
PYTEST  := $(VPY) -m pytest
DEV_BIN := build/dev-bin

.PHONY: dev deps lint test test-fast test-unit test-host test-etcd test-vm test-frozen test-e2e demo build install image build-arm64 test-arm64 uninstall bench clean

dev: $(VENV)/.installed $(DEV_BIN)/cni-rdma

$(VENV)/.installed: requirements-dev.txt
	$(PY) -m venv $(VENV)
	$(VPY) -m pip install -q --disable-pip-version-check -r requirements-dev.txt
	touch $@

# The dev launchers, and cni_rdma/_native.c built in place for this interpreter (tools/build_ext.py).
$(DEV_BIN)/cni-rdma: tools/make_dev_bin.py tools/build_ext.py cni_rdma/_native.c cni_rdma/registry.py $(VENV)/.installed
	$(VPY) tools/build_ext.py
	$(VPY) tools/make_dev_bin.py

# The guide, enforced: ruff (lint + import order) and mypy over the product packages (config in pyproject.toml).
lint: dev
	$(VENV)/bin/ruff check cni_rdma plugins ipam
	$(VENV)/bin/mypy

# System packages the test tiers use (real peers and tools); installs only what is missing.
deps:
	tools/install-deps.sh

test-unit: dev
	$(PYTEST) tests/unit

test-host: dev deps
	$(PYTEST) tests/netns

# cluster-ipam against real 3-member etcd clusters the tests start on loopback ports (tests/etcd).
test-etcd: dev deps
	$(PYTEST) tests/etcd

# The inner loop: everything but the VM.
test-fast: dev deps
	$(PYTEST) tests/unit tests/ipam tests/netns tests/security tests/cli

# A real macvlan ADD/DEL with IPAM in throwaway namespaces (root): the result, the pod's `ip addr`, DEL.
demo: dev
	tools/demo.sh

# The VM tier: one QEMU boot (Debian's kernel, software emulation) running pytest tests/vm inside; the
# first run downloads and prepares the kernel (see DEVELOPERS.md "VM tier"). E.g. VM_PYTEST_ARGS='-k ipvlan'
# --retry 1: a VM that fails itself (no result: a guest kernel hung under emulation) boots once more.
VM_PYTEST_ARGS ?=
test-vm: dev
	$(VPY) -m tools.vm run --retry 1 -- $(PYTEST) tests/vm $(VM_PYTEST_ARGS)

test: lint test-fast test-etcd test-vm test-frozen test-e2e

# --- Frozen bundle (build.spec), install, frozen-binary tier, benchmark ------------------------------
BUNDLE      := build/cni-rdma/cni-rdma
FROZEN_BIN  := build/frozen-bin
BUNDLE_SRC   = build.spec tools/build_bundle.py tools/launcher.c cni_rdma/_native.c $(shell find cni_rdma plugins ipam -name '*.py' 2>/dev/null)
PREFIX      ?= /opt/cni
CNI_BIN_DIR ?= $(PREFIX)/bin
CNI_LIB_DIR ?= $(PREFIX)/lib/cni-rdma
DESTDIR     ?=
FORCE       ?=

# One onedir bundle holding every plugin and its own glibc (needs only a Linux kernel on the node; patchelf
# from `make deps`); prints its size. Always rebuilt (fresh commit in --version).
build: dev deps
	$(VPY) tools/build_bundle.py

$(BUNDLE): $(BUNDLE_SRC) $(VENV)/.installed | deps
	$(VPY) tools/build_bundle.py

# The bundle under $(CNI_LIB_DIR), one symlink per plugin type in $(CNI_BIN_DIR); FORCE=1 replaces files.
# The bundle's own installer (`cni-rdma install`) runs it: it points the copy's ELF interpreter at
# $(CNI_LIB_DIR)/_internal/lib/ (an absolute path: a bundle moved by hand does not start).
install: $(BUNDLE)
	$(BUNDLE) install --bundle build/cni-rdma --lib-dir $(CNI_LIB_DIR) \
	    --bin-dir $(CNI_BIN_DIR) --destdir "$(DESTDIR)" $(if $(filter 1 yes true,$(FORCE)),--force)

# The DaemonSet's image (deploy/Dockerfile): FROM scratch + the bundle, built with buildah, nothing pulled;
# also written to build/image/cni-rdma.oci.tar (`podman load -i` it). IMAGE_ARGS='--tag T --storage DIR'.
IMAGE_ARGS ?=
image: $(BUNDLE) deps
	$(VPY) tools/build_image.py --oci-archive build/image/cni-rdma.oci.tar $(IMAGE_ARGS)

# arm64 (not in `make test`: ~37 min of debootstrap under qemu-user once, ~11 min of pip once, ~6 min per
# build): the same self-contained bundle built in a bookworm arm64 userland (tools/arm64.py); its empty-root
# tests run through binfmt/qemu-user here. ADD stops at qemu-user: it does not translate the NS_GET_NSTYPE
# ioctl (netns check), so the ADD/DEL tests are left out.
build-arm64: deps  # plus: apt-get install qemu-user-static binfmt-support (not in make deps)
	$(PY) tools/arm64.py build

test-arm64: build-arm64
	CNI_TEST_BIN_DIR=$(CURDIR)/build/arm64/frozen-bin $(PYTEST) tests/netns/test_selfcontained.py \
	    -k 'not bullseye and not add_check_del and not foreign_ipam'

uninstall:
	$(PY) tools/install.py uninstall --lib-dir $(CNI_LIB_DIR) --bin-dir $(CNI_BIN_DIR) --destdir "$(DESTDIR)"

# The integration tiers again, against the frozen executables (a bundle missing a module fails here):
# the host tier -- with tests/netns/test_selfcontained.py: the bundle alone in an empty chroot and over a
# debootstrap'd bullseye (built once, ~2 min, cached in ~/.cache/cni-rdma/rootfs) -- then the VM tier (one
# more QEMU boot, several minutes; FROZEN_VM=0 skips it).
FROZEN_VM ?= 1
# cluster-ipam's quick files against the bundle (TLS proves ssl is bundled); the storms run once, in test-etcd.
FROZEN_ETCD := tests/etcd/test_cluster_ipam.py tests/etcd/test_tls.py tests/etcd/test_interop.py
test-frozen: $(BUNDLE) deps
	$(PY) tools/rootfs.py --suite bullseye --arch amd64
	CNI_TEST_BIN_DIR=$(CURDIR)/$(FROZEN_BIN) $(PYTEST) tests/netns tests/security tests/cli $(FROZEN_ETCD)
ifeq ($(FROZEN_VM),1)
	CNI_TEST_BIN_DIR=$(CURDIR)/$(FROZEN_BIN) $(VPY) -m tools.vm run --retry 1 -- $(PYTEST) tests/vm $(VM_PYTEST_ARGS)
endif

# End to end against the installed bundle (`make install PREFIX=<temp>`): containerd (ctr run --cni), podman (CNI
# backend), a libcni Go driver, two nodes on one L2, Multus-shaped delegation, faults. See tests/e2e/runtimes.py.
test-e2e: $(BUNDLE) deps
	$(PYTEST) tests/e2e $(E2E_PYTEST_ARGS)

# Frozen plugins vs Debian's Go containernetworking-plugins (not a test): prints a table, writes bench/results.md.
bench: $(BUNDLE) deps
	$(VPY) bench/bench.py $(BENCH_ARGS)
