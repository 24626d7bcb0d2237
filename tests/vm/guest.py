"""In-guest helpers for the VM tier: kernel modules, dummy / netdevsim / rxe devices, RDMA read-back.

Only meaningful inside the QEMU guest that `python -m tools.vm run` boots (Debian's kernel, with
netdevsim, siw and a patched rdma_rxe built by tools/vm). Everything goes through iproute2 (`ip`,
`rdma`), sysfs and kmod, never the project's own netlink layer, so tests read state back on an
independent path. The fixtures in conftest.py wrap these; plugin tests may call them directly.
"""
from __future__ import annotations

import json
import os
import platform
import random
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from tests.topology import sh, unique

GUEST_ENV = "CNI_RDMA_VM_GUEST"
IN_GUEST = os.environ.get(GUEST_ENV) == "1"
NOT_IN_GUEST = ("VM tier: runs only inside the QEMU guest; use `make test-vm` "
                "or `python -m tools.vm run -- .venv/bin/python -m pytest tests/vm`")
NETDEVSIM_BUS = Path("/sys/bus/netdevsim")


def wait_for(predicate, what: str, timeout: float = 20.0, interval: float = 0.05):
    """Poll until predicate() is truthy (returns it); the guest is slow, so be generous."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


# ---------------------------------------------------------------------------------------------
# Kernel modules
# ---------------------------------------------------------------------------------------------
def modprobe(*names: str) -> None:
    """Load modules (with their dependencies); a missing module is an error, never a skip."""
    p = subprocess.run(["modprobe", "-a", *names], capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError(f"modprobe {' '.join(names)} failed: {p.stderr.strip()} "
                           f"(kernel {platform.release()}; extra modules come from `python -m tools.vm setup`)")


def module_loaded(name: str) -> bool:
    return any(line.split(" ", 1)[0] == name for line in Path("/proc/modules").read_text().splitlines())


def stock_rxe_path() -> Path:
    """Debian's own rdma_rxe.ko (tools/vm leaves it in kernel/; the patched one is in updates/)."""
    found = sorted(Path(f"/lib/modules/{platform.release()}/kernel/drivers/infiniband/sw/rxe").glob("rdma_rxe.ko*"))
    if not found:
        raise RuntimeError("stock rdma_rxe.ko not found in the module tree")
    return found[0]


def rxe_variant() -> str | None:
    """Which rdma_rxe is loaded: "patched" (ours: built out of tree, so tainted O), "stock", or None."""
    if not module_loaded("rdma_rxe"):
        return None
    taint = Path("/sys/module/rdma_rxe/taint").read_text()
    return "patched" if "O" in taint else "stock"


def load_rxe(variant: str = "patched") -> None:
    """Make `variant` of rdma_rxe the loaded one.

    "patched" (tools/vm/patches/rxe-disassociate.patch) can move to another netns in exclusive mode;
    "stock" is Debian's, which answers EOPNOTSUPP to that. Switching unloads rdma_rxe, so no rxe
    device may exist at that moment.
    """
    if variant not in ("patched", "stock"):
        raise ValueError(f"rxe variant {variant!r}: 'patched' or 'stock'")
    current = rxe_variant()
    if current == variant:
        return
    if current is not None:
        p = subprocess.run(["rmmod", "rdma_rxe"], capture_output=True, text=True)
        if p.returncode != 0:
            raise RuntimeError(f"cannot switch rdma_rxe {current} -> {variant}: {p.stderr.strip()} "
                               "(delete every rxe device first)")
    if variant == "patched":
        modprobe("rdma_rxe")
    else:
        path = stock_rxe_path()
        deps = sh("modinfo", "-F", "depends", str(path)).strip()
        if deps:
            modprobe(*deps.split(","))
        sh("insmod", str(path))
    if rxe_variant() != variant:
        raise RuntimeError(f"loaded rdma_rxe is {rxe_variant()}, wanted {variant}")


# ---------------------------------------------------------------------------------------------
# Plain links
# ---------------------------------------------------------------------------------------------
def ip(*args: str, netns: str | None = None) -> str:
    return sh("ip", *(["-n", netns] if netns else []), *args)


def link(ifname: str, netns: str | None = None) -> dict | None:
    """`ip -j -d link show dev ifname` (details: linkinfo, vfinfo_list), or None when absent."""
    p = subprocess.run(["ip", *(["-n", netns] if netns else []), "-j", "-d", "link", "show", "dev", ifname],
                       capture_output=True, text=True)
    if p.returncode != 0:
        return None
    found = json.loads(p.stdout or "[]")
    return found[0] if found else None


def dummy_add(ifname: str | None = None, *, netns: str | None = None, mtu: int = 1500, up: bool = True) -> str:
    modprobe("dummy")
    ifname = ifname or unique("d")[:15]
    ip("link", "add", ifname, "mtu", str(mtu), "type", "dummy", netns=netns)
    if up:
        ip("link", "set", ifname, "up", netns=netns)
    return ifname


def link_del(ifname: str, netns: str | None = None) -> None:
    subprocess.run(["ip", *(["-n", netns] if netns else []), "link", "del", "dev", ifname], capture_output=True)


# ---------------------------------------------------------------------------------------------
# netdevsim: a simulated SR-IOV PF (VF config lives on the PF; netdevsim VFs have no netdevs)
# ---------------------------------------------------------------------------------------------
@dataclass
class NetdevsimPF:
    dev_id: int
    ifname: str
    netns: str | None = None   # where the PF netdev lives (None: the guest's initial netns)

    @property
    def sysfs(self) -> Path:
        """The bus device: sriov_numvfs, new_port/del_port; /sys/class/net/<pf>/device points here."""
        return NETDEVSIM_BUS / "devices" / f"netdevsim{self.dev_id}"

    @property
    def ifindex(self) -> int:
        return self.link()["ifindex"]

    @property
    def numvfs(self) -> int:
        return int((self.sysfs / "sriov_numvfs").read_text())

    def link(self) -> dict:
        found = link(self.ifname, self.netns)
        if found is None:
            raise LookupError(f"netdevsim PF {self.ifname} not found (netns {self.netns or 'initial'})")
        return found

    def vfs(self) -> list[dict]:
        """vfinfo_list of `ip -j -d link show` (vf, address, vlan_list [{vlan, qos}], trust, ...)."""
        return self.link().get("vfinfo_list", [])

    def vf(self, n: int) -> dict:
        return next(v for v in self.vfs() if v["vf"] == n)

    def set_vf(self, n: int, *args: str) -> None:
        """`ip link set <pf> vf n ARGS...`, e.g. set_vf(0, "mac", "02:..", "vlan", "10", "qos", "3")."""
        ip("link", "set", "dev", self.ifname, "vf", str(n), *args, netns=self.netns)


def netdevsim_add(numvfs: int = 4, *, ifname: str | None = None, netns: str | None = None) -> NetdevsimPF:
    """A new netdevsim device with one port (the PF netdev) and numvfs VFs, renamed to a unique ifname
    (netdevsim's own names are eth0, eth1, ...) and optionally moved into netns."""
    modprobe("netdevsim")
    taken = {int(p.name[len("netdevsim"):]) for p in (NETDEVSIM_BUS / "devices").glob("netdevsim*")}
    dev_id = random.choice([i for i in range(100, 1000) if i not in taken])
    (NETDEVSIM_BUS / "new_device").write_text(f"{dev_id} 1")
    pf = NetdevsimPF(dev_id, "")
    net = wait_for(lambda: sorted((pf.sysfs / "net").glob("*")) if (pf.sysfs / "net").exists() else None,
                   f"netdevsim{dev_id}'s netdev")
    pf.ifname = ifname or f"sim{dev_id}pf"
    ip("link", "set", "dev", net[0].name, "name", pf.ifname)
    if numvfs:
        (pf.sysfs / "sriov_numvfs").write_text(str(numvfs))
    if netns:
        ip("link", "set", "dev", pf.ifname, "netns", netns)
        pf.netns = netns
    return pf


def netdevsim_del(pf: NetdevsimPF) -> None:
    if pf.sysfs.exists():
        (NETDEVSIM_BUS / "del_device").write_text(str(pf.dev_id))


# ---------------------------------------------------------------------------------------------
# RDMA: rxe devices and the netns mode (read back with the iproute2 `rdma` tool)
# ---------------------------------------------------------------------------------------------
def rdma(*args: str, netns: str | None = None) -> str:
    return sh("rdma", *args, netns=netns)


def rdma_devs(netns: str | None = None) -> list[dict]:
    """`rdma -j dev` as seen from netns: [{ifindex, ifname, node_type, node_guid, ...}]."""
    out = rdma("-j", "dev", netns=netns)
    return json.loads(out) if out.strip() else []


def rdma_dev_names(netns: str | None = None) -> list[str]:
    return [d["ifname"] for d in rdma_devs(netns)]


def rdma_links(netns: str | None = None) -> list[dict]:
    """`rdma -j link`: [{ifindex, ifname (the rdma dev), port, state, physical_state, netdev, ...}]."""
    out = rdma("-j", "link", netns=netns)
    return json.loads(out) if out.strip() else []


def rdma_system() -> dict[str, str]:
    """`rdma system` ("netns exclusive copy-on-fork on") as a dict; this iproute2 has no JSON for it."""
    words = rdma("system").split()
    return dict(zip(words[::2], words[1::2]))


def rdma_netns_mode() -> str:
    """ "exclusive" or "shared" (the VM boots with ib_core.netns_mode=0: exclusive)."""
    return rdma_system()["netns"]


def set_rdma_netns_mode(mode: str) -> None:
    rdma("system", "set", "netns", mode)


@dataclass
class RxeDevice:
    name: str                    # the RDMA device, e.g. rxe1a2b3c
    netdev: str                  # the netdev it runs over (in the guest's initial netns)
    own_netdev: bool = False     # created with the device: deleted with it

    def netns_of(self, candidates: list[str]) -> str | None:
        """Which of candidates (netns names; None = initial) sees the device — exclusive mode."""
        for ns in candidates:
            try:
                if self.name in rdma_dev_names(ns):
                    return ns
            except RuntimeError:  # that netns is gone
                continue
        return None


def rxe_add(netdev: str | None = None, *, name: str | None = None, variant: str = "patched") -> RxeDevice:
    """An rxe (soft-RoCE) device over netdev (a fresh dummy in the initial netns when None)."""
    load_rxe(variant)
    own = netdev is None
    netdev = netdev or dummy_add()
    name = name or unique("rxe")[:12]
    try:
        rdma("link", "add", name, "type", "rxe", "netdev", netdev)
    except Exception:
        if own:
            link_del(netdev)
        raise
    return RxeDevice(name, netdev, own)


def rxe_del(dev: RxeDevice) -> None:
    """Best effort, wherever the device went: delete it in the initial netns or any named netns;
    deleting its own netdev unregisters it in any case. Waits until it is gone."""
    namespaces: list[str | None] = [None]
    p = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True)
    namespaces += [line.split()[0] for line in p.stdout.splitlines() if line.strip()]
    for ns in namespaces:
        cmd = ["rdma", "link", "delete", dev.name]
        if ns:
            cmd = ["ip", "netns", "exec", ns, *cmd]
        if subprocess.run(cmd, capture_output=True).returncode == 0:
            break
    if dev.own_netdev:
        link_del(dev.netdev)
    wait_for(lambda: dev.netns_of(namespaces) is None, f"rxe device {dev.name} to go away")
