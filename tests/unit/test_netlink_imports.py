"""The netlink layer stays cheap to import: standard library only, nothing heavy pulled in.

Start-up is the plugins' latency (issue 4: layer + one lookup <= 5 ms over a bare interpreter);
bench/netlink_bench.py measures it, this test keeps the import graph from regressing.
"""
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _modules_after(code: str) -> set[str]:
    prog = (f"import sys; sys.path.insert(0, {str(ROOT)!r}); before = set(sys.modules)\n{code}\n"
            "new = sorted(set(sys.modules) - before)\nimport json; print(json.dumps(new))")
    out = subprocess.run([sys.executable, "-IS", "-c", prog], check=True, capture_output=True, text=True).stdout
    return set(json.loads(out.splitlines()[-1]))


def test_layer_imports_only_cheap_stdlib_modules():
    mods = _modules_after("import cni_rdma.netlink.rtnl, cni_rdma.netlink.rdma, cni_rdma.netlink.core, cni_rdma.sysctl")
    ours = {m for m in mods if m.startswith("cni_rdma")}
    layer = {f"cni_rdma.netlink.{m}" for m in ("core", "errors", "rtmsg", "links", "addresses", "routes", "vfs",
                                                "rtnl", "rdma")}
    assert ours <= {"cni_rdma", "cni_rdma.errors", "cni_rdma.frozen", "cni_rdma.record", "cni_rdma.ipaddr",
                    "cni_rdma.netlink", "cni_rdma.sysctl", "cni_rdma.native", "cni_rdma._native", "cni_rdma.errnos"} | layer
    for heavy in ("pyroute2", "socket", "_socket", "errno", "selectors", "ipaddress", "ctypes", "subprocess", "json",
                  "logging"):
        assert heavy not in mods, f"the netlink layer imports {heavy}"


def test_a_lookup_needs_no_more_modules():
    mods = _modules_after("from cni_rdma.netlink.rtnl import Rtnl\nwith Rtnl() as nl: nl.link_get(name='lo')")
    assert "ipaddress" not in mods and "socket" not in mods and "_socket" not in mods


def test_layer_has_its_own_exception_root():
    """The layer knows nothing of CNI: importing it alone loads no cni_rdma.errors (skel maps its errors)."""
    mods = _modules_after("import cni_rdma.netlink.rtnl, cni_rdma.netlink.rdma")
    assert "cni_rdma.errors" not in mods
