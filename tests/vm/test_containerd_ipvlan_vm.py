"""containerd + go-cni with our ipvlan (VM tier: this host's kernel has no ipvlan): `ctr run --cni` attaches two
containers to a conflist of ours (ipvlan L2 + host-local) on a dummy master, they ping each other, and the DEL
go-cni sends when each exits releases the pool. Same machinery as the e2e tier (tests/e2e/runtimes.py: a
private mount namespace for /etc/cni/net.d, /opt/cni/bin, /var/lib/cni; containerd on private dirs, stopped by
PID); the plugins are CNI_TEST_BIN_DIR's (dev launchers, or the bundle in the frozen pass)."""
from __future__ import annotations

import json
import os
import subprocess
import uuid

import pytest

from tests import topology
from tests.e2e import runtimes
from tests.vm import guest

NET = "e2e-ipvlan"


@pytest.fixture
def ctd(tmp_path):
    guest.modprobe("ipvlan", "dummy")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for p in topology.bin_dir().iterdir():
        (bin_dir / p.name).symlink_to(p)  # not resolved: the bundle dispatches on argv[0]
    runtimes.link_go_plugins(bin_dir)  # loopback for go-cni
    master = f"e2e{uuid.uuid4().hex[:6]}"
    topology.sh("ip", "link", "add", master, "type", "dummy")
    topology.sh("ip", "link", "set", master, "up")
    jail = runtimes.Jail(tmp_path / "jail", bin_dir)
    c = None
    try:
        c = runtimes.Containerd(jail, tmp_path / "containerd")
        yield c, jail, master
    finally:
        if c is not None:
            c.close()
        jail.close()
        subprocess.run(["ip", "link", "del", master], capture_output=True)


def test_ctr_run_cni_ipvlan_two_containers(ctd, tmp_path):
    c, jail, master = ctd
    rootfs = runtimes.make_rootfs(tmp_path / "rootfs")
    jail.write_conf("10-ipvlan.conflist", {"cniVersion": "1.0.0", "name": NET, "plugins": [
        {"type": "ipvlan", "master": master, "mode": "l2",
         "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.67.0.0/24"}]]}}]})
    shared = tmp_path / "shared"
    shared.mkdir()

    def a_up(_a_ip: str) -> None:
        pid = c.ctr("task", "ls").stdout.splitlines()[1].split()[1]
        link = json.loads(runtimes.run(["nsenter", f"--net=/proc/{pid}/ns/net", "ip", "-j", "-d", "link", "show",
                                        "eth0"]).stdout)[0]
        assert link["linkinfo"]["info_kind"] == "ipvlan" and link["linkinfo"]["info_data"]["mode"] == "l2"

    # plugin processes take ~1 s each under TCG: the e2e steps (tests/e2e/runtimes.py) with longer waits
    runtimes.ctr_run_pair(c, rootfs, shared, NET, ping="-c 2 -W 3", timeout=300, on_a_up=a_up)
    assert os.path.isdir(jail.var_dir / "networks" / NET)  # host-local did run here (and released)
