"""Per-call kernel work of an 8-rail pod: what one sriov ADD / DEL (and rdma ADD / DEL where the kernel has
RDMA) asks of the kernel, counted with strace, never timed.

    .venv/bin/python -m bench.rails [--pfs 8] [--vfs 8] [--plugins build/dev-bin]   (root; strace)

Host tier (this kernel): a node netns with --pfs "PFs" (veths) and --vfs VF stand-ins each (veths), a
fake PCI tree naming them (tests/fakepci.py), as tests/netns/test_sriov.py does. Each rail's VF 0 goes
to one pod: ADD x8 with host-local (in-process), then DEL x8. Every plugin process runs under
`strace -f`; per call we count
  - netlink requests (sendto on a netlink socket), dump requests among them (NLM_F_DUMP), bytes received,
  - RTEXT_FILTER_VF link requests (the PF's whole VF table in the reply),
  - sysfs syscalls (any path under the sysfs root: open, readlink, stat, getdents of opened dirs),
  - setns calls and threads started (clone with CLONE_THREAD), netlink sockets opened.
The counts do not depend on machine load. With --rdma (VM tier: rxe) the chained rdma ADD/DEL too.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests import topology  # noqa: E402
from tests.fakepci import FakePci  # noqa: E402

TRACE = ("socket,sendto,sendmsg,recvmsg,recvfrom,openat,readlink,readlinkat,newfstatat,statx,stat,lstat,getdents64,"
         "setns,clone,clone3")


def build(pfs: int, vfs: int) -> tuple[topology.Node, FakePci, list[str]]:
    node = topology.make_node(default_route=False)
    pci = FakePci()
    batch = []
    first = []
    for p in range(pfs):
        batch.append(f"link add pf{p} type veth peer name pf{p}p")
        pf_addr = pci.add_pf(pci.addr(0x10 + p, 0, 0), f"pf{p}", totalvfs=vfs)
        # Real PFs report where their VFs sit in routing-ID space (sriov_offset/stride).
        (pci.dev_dir(pf_addr) / "sriov_offset").write_text("8\n")
        (pci.dev_dir(pf_addr) / "sriov_stride").write_text("1\n")
        for v in range(vfs):
            name = f"r{p}v{v}"
            batch.append(f"link add {name} address 02:5b:{p:02x}:00:00:{v:02x} type veth peer name r{p}p{v}")
            batch.append(f"link set r{p}p{v} up")  # the VF's carrier (the far end of a real VF's wire is up)
            rid = (0x10 + p) * 256 + 8 + v
            addr = pci.add_vf(pf_addr, v, f"{pci.domain:04x}:{rid >> 8:02x}:{(rid & 0xFF) >> 3:02x}.{rid & 7}", name)
            if v == 0:
                first.append(addr)
    fd, script = tempfile.mkstemp(prefix="crn-rails-", suffix=".batch")
    os.write(fd, ("\n".join(batch) + "\n").encode())
    os.close(fd)
    topology.sh("ip", "-n", node.name, "-batch", script)
    os.unlink(script)
    return node, pci, first


def traced(plugin_dir: Path, plugin: str, command: str, conf: dict, env: dict, node: topology.Node,
           out: Path) -> tuple[int, str, str]:
    cmd = ["nsenter", f"--net={node.path}", "strace", "-f", "-qq", "-s", "256", "-yy", "-e",
           f"trace={TRACE}", "-o", str(out), str(plugin_dir / plugin)]
    p = subprocess.run(cmd, input=json.dumps(conf).encode(), env=env, capture_output=True, timeout=120)
    return p.returncode, p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")


_NL_FD = re.compile(r"^\w+\(\d+<NETLINK:")
_EXT_MASK_VF = ("RTEXT_FILTER_VF", "\\x08\\x00\\x1d\\x00\\x09\\x00", "\\x08\\x00\\x1d\\x00\\x01\\x00")


def count(trace: Path, sysroot: str) -> dict:
    """One plugin process's strace -f -yy output -> the counts of the table."""
    c = {"netlink requests": 0, "dumps": 0, "VF-table requests": 0, "bytes received": 0,
         "netlink sockets": 0, "sysfs syscalls": 0, "sysfs opens": 0, "setns": 0, "threads": 0}
    for line in trace.read_text().splitlines():
        rest = line.partition(" ")[2].lstrip()
        call = rest.split("(", 1)[0]
        if call == "socket" and "AF_NETLINK" in rest:
            c["netlink sockets"] += 1
        elif call in ("sendto", "sendmsg") and _NL_FD.match(rest):
            c["netlink requests"] += 1
            flags = rest.split("nlmsg_flags=", 1)[1].split(",", 1)[0]
            if "NLM_F_DUMP" in flags or "NLM_F_ROOT" in flags or "0x300" in flags:
                c["dumps"] += 1
            if any(m in rest for m in _EXT_MASK_VF):
                c["VF-table requests"] += 1
        elif call in ("recvmsg", "recvfrom") and _NL_FD.match(rest):
            ret = rest.rsplit("= ", 1)[-1].split()[0]
            c["bytes received"] += int(ret) if ret.isdigit() else 0
        elif call == "setns":
            c["setns"] += 1
        elif call in ("clone", "clone3") and "CLONE_THREAD" in rest:
            c["threads"] += 1
        elif sysroot in rest:
            c["sysfs syscalls"] += 1
            if call == "openat":
                c["sysfs opens"] += 1
    return c


class Rails:
    """A node netns with rails (PF + VFs) under a fake PCI tree; `chain` is the conflist of one attachment."""

    def __init__(self, pfs: int, vfs: int, vm: bool):
        self.vm = vm
        self.cleanups: list = []
        if vm:
            self.node, self.pci, self.vfs = self._build_vm(pfs, vfs)
        else:
            self.node, self.pci, self.vfs = build(pfs, vfs)
        self.cleanups.append(lambda: topology.netns_del(self.node.name))
        self.cleanups.append(self.pci.cleanup)

    def _build_vm(self, pfs: int, vfs: int):
        """VM tier: netdevsim PFs with `vfs` VFs each (the VF table is real: IFLA_VFINFO_LIST, vf_set); VF 0 of
        each has a dummy netdev and an rxe device (its RDMA function); the other VFs are only in the PF's VF
        table and the PCI tree (creating netdevs and rxe devices for them takes minutes in the guest)."""
        from tests.vm import guest

        node = topology.make_node(default_route=False)
        pci = FakePci()
        first = []
        for p in range(pfs):
            pf = guest.netdevsim_add(numvfs=0, netns=node.name)
            self.cleanups.append(lambda pf=pf: guest.netdevsim_del(pf))
            if vfs > 4:  # netdevsim's default cap; debugfs max_vfs raises it
                debug = Path("/sys/kernel/debug")
                if not (debug / "netdevsim").exists():
                    subprocess.run(["mount", "-t", "debugfs", "none", str(debug)], check=False)
                (debug / "netdevsim" / f"netdevsim{pf.dev_id}" / "max_vfs").write_text(str(vfs))
            (pf.sysfs / "sriov_numvfs").write_text(str(vfs))
            pf_addr = pci.add_pf(pci.addr(0x10 + p, 0, 0), pf.ifname, totalvfs=vfs, offset=8, stride=1)
            for v in range(vfs):
                rid = (0x10 + p) * 256 + 8 + v
                addr = f"{pci.domain:04x}:{rid >> 8:02x}:{(rid & 0xFF) >> 3:02x}.{rid & 7}"
                if v:  # in the PF's VF table and the PCI tree; no netdev/RDMA device (the guest is slow)
                    pci.add_vf(pf_addr, v, addr, None)
                    continue
                name = guest.dummy_add(f"r{p}v{v}", netns=node.name, up=False)
                guest.ip("link", "set", name, "address", f"02:5b:{p:02x}:00:00:{v:02x}", netns=node.name)
                pci.add_vf(pf_addr, v, addr, name)
                rxe = guest.rxe_add()
                self.cleanups.append(lambda rxe=rxe: guest.rxe_del(rxe))
                guest.rdma("dev", "set", rxe.name, "netns", node.name)
                (pci.dev_dir(addr) / "infiniband" / rxe.name).mkdir(parents=True)
                first.append(addr)
        return node, pci, first

    def chain(self, i: int, work: Path) -> list[dict]:
        ipam = {"type": "host-local", "subnet": f"10.77.{i}.0/24", "dataDir": str(work / "ipam")}
        sriov = {"type": "sriov", "deviceID": self.vfs[i], "ipam": ipam}
        if not self.vm:
            return [sriov]
        # PF-side settings (the VF table is read, written and read back) and the chained rdma plugin
        sriov.update(vlan=100 + i, mac=f"02:aa:00:00:{i:02x}:01", spoofchk="off")
        return [sriov, {"type": "rdma", "deviceID": self.vfs[i], "dataDir": str(work / "state")}]

    def cleanup(self) -> None:
        for fn in reversed(self.cleanups):
            try:
                fn()
            except Exception as e:  # best effort: report and go on
                print(f"cleanup: {e}", file=sys.stderr)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pfs", type=int, default=8)
    ap.add_argument("--vfs", type=int, default=8)
    ap.add_argument("--vm", action="store_true", help="in the VM guest: netdevsim PFs, rxe devices, rdma chained")
    ap.add_argument("--plugins", default=str(ROOT / "build" / "dev-bin"))
    ap.add_argument("--keep", action="store_true", help="keep the strace files (printed)")
    args = ap.parse_args()
    if shutil.which("strace") is None:
        print("needs strace", file=sys.stderr)
        return 2
    plugin_dir = Path(args.plugins)
    rails = Rails(args.pfs, args.vfs, args.vm)
    pod = topology.make_pod()
    work = Path(tempfile.mkdtemp(prefix="crn-rails-"))
    env = {"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"), "CNI_CONTAINERID": "rails",
           "CNI_NETNS": pod.path, "CNI_PATH": str(plugin_dir), "CNI_RDMA_STATE_ROOT": str(work / "state"),
           **rails.pci.env}
    totals: dict[str, list] = {}
    results: dict[int, dict] = {}
    try:
        n = len(rails.vfs)
        for command in ("ADD", "DEL"):
            for i in (range(n) if command == "ADD" else reversed(range(n))):
                chain = rails.chain(i, work)
                prev = None
                for plugin in (chain if command == "ADD" else list(reversed(chain))):
                    conf = {"cniVersion": "1.0.0", "name": "rails", **plugin}
                    if command == "ADD" and prev is not None:
                        conf["prevResult"] = prev
                    elif command == "DEL" and i in results:
                        conf["prevResult"] = results[i]
                    out = work / f"{plugin['type']}-{command}-{i}.trace"
                    code, text, err = traced(plugin_dir, plugin["type"], command, conf,
                                        {**env, "CNI_COMMAND": command, "CNI_IFNAME": f"net{i + 1}"}, rails.node, out)
                    if code != 0:
                        print(f"{plugin['type']} {command} rail {i} failed: {text}{err}", file=sys.stderr)
                        return 1
                    if command == "ADD":
                        prev = json.loads(text)
                    totals.setdefault(f"{plugin['type']} {command}", []).append(count(out, str(rails.pci.root)))
                if command == "ADD":
                    results[i] = prev
        where = "VM: netdevsim PFs, a dummy netdev and an rxe device for VF 0 of each" if args.vm else "veth stand-ins"
        print(f"{args.pfs} PFs x {args.vfs} VFs (fake PCI tree, {where}); per call, rail 1 / rail {n}:")
        keys = list(next(iter(totals.values()))[0])
        print("| call | " + " | ".join(keys) + " |")
        print("|---|" + "---|" * len(keys))
        for call, rows in totals.items():
            first, last = rows[0], rows[-1]
            cells = [str(first[k]) if first[k] == last[k] else f"{first[k]} / {last[k]}" for k in keys]
            print(f"| {call} | " + " | ".join(cells) + " |")
        if args.keep:
            print(f"traces in {work}")
    finally:
        topology.netns_del(pod.name)
        rails.cleanup()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
