"""Read and write /proc/sys keys (netlink has no API for sysctls).

/proc/sys/net reflects the netns of the *calling thread*, so to change a pod's sysctl call these
from inside `cni_rdma.netns.in_netns`:

    in_netns(path, sysctl.set, "net/ipv4/conf/net1/arp_notify", "1")

Keys use slashes ("net/ipv6/conf/eth0/accept_dad"); dotted keys ("net.ipv4.ip_forward") are
accepted too when no component contains a dot (interface names such as "eth0.100" do, so prefer
slashes).
"""
from __future__ import annotations

import posix

from .errors import IO_FAILURE, CniError

ROOT = "/proc/sys"


def _path(key: str) -> str:
    k = key.strip("/")
    if "/" not in k:
        k = k.replace(".", "/")
    parts = k.split("/")
    if not k or any(p in ("", ".", "..") for p in parts):
        raise CniError(IO_FAILURE, f"invalid sysctl key {key!r}")
    return f"{ROOT}/{k}"


def get(key: str) -> str:
    """The value of a sysctl, without the trailing newline."""
    path = _path(key)
    try:
        with open(path, "rb", buffering=0) as f:
            return f.read().decode().rstrip("\n")
    except OSError as e:
        raise CniError(IO_FAILURE, f"failed to read sysctl {key}", e.strerror or str(e)) from None


def set(key: str, value: str | int) -> None:  # noqa: A001 - the natural name, as in the brief
    """Write a sysctl value (one write(2), as the kernel expects)."""
    path = _path(key)
    data = str(value).encode()
    try:
        fd = posix.open(path, posix.O_WRONLY | posix.O_CLOEXEC)
    except OSError as e:
        raise CniError(IO_FAILURE, f"failed to set sysctl {key}={value}", e.strerror or str(e)) from None
    try:
        posix.write(fd, data)
    except OSError as e:
        raise CniError(IO_FAILURE, f"failed to set sysctl {key}={value}", e.strerror or str(e)) from None
    finally:
        posix.close(fd)
