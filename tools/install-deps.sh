#!/bin/sh
# Install the Debian packages the test tiers need, only those missing (CI starts from a fresh machine).
set -eu
need=""
have() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'ok installed'; }
# e2e tier: the runtimes (containerd, podman + runc), libcni for the Go driver, busybox for container rootfs,
# and the RDMA userspace the VM tier's traffic test runs (the guest sees the host's filesystem);
# etcd-server + openssl: the cluster-ipam tier's etcd clusters and their TLS certificates (tests/etcd).
# udev (hwdb) + pciutils (pci.ids): the operator CLI's two device-naming paths (tests/cli).
# strace: the host tier compares our VF netlink requests with iproute2's byte for byte.
# patchelf: make build (self-contained bundle); debootstrap: the bullseye root of the frozen tier;
# buildah: make image (FROM scratch; podman runs it in the frozen tier).
# gcc + libc6-dev: make build compiles the bundle's launcher (tools/launcher.c); bench/ its spawn helper.
for pkg in iproute2 containernetworking-plugins containerd podman runc golang-go golang-github-appc-cni-dev \
           busybox-static rdma-core ibverbs-utils ibverbs-providers perftest rdmacm-utils \
           etcd-server openssl udev pciutils strace patchelf debootstrap buildah gcc libc6-dev; do
    have "$pkg" || need="$need $pkg"
done
[ -z "$need" ] && exit 0
echo "installing:$need" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get install -y -q --no-install-recommends $need >/dev/null \
    || { apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends $need >/dev/null; }
# etcd-server's package enables and starts a system etcd on 2379/2380; the tests start their own clusters.
if command -v systemctl >/dev/null 2>&1 && systemctl is-enabled etcd >/dev/null 2>&1; then
    systemctl disable --now etcd >/dev/null 2>&1 || true
fi
