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
    ours = {p.name for p in topology.bin_dir().iterdir()}
    for p in topology.bin_dir().iterdir():
        (bin_dir / p.name).symlink_to(p)  # not resolved: the bundle dispatches on argv[0]
    for go in ("loopback",):
        if go not in ours:
            (bin_dir / go).symlink_to(runtimes.GO_PLUGIN_DIR / go)
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
    mount = f"type=bind,src={shared},dst=/shared,options=rbind:rw"
    script_a = ("ip -o -4 addr show eth0 > /shared/a.tmp && mv /shared/a.tmp /shared/a.addr; "
                "while [ ! -e /shared/done ]; do sleep 0.2; done")
    a = subprocess.Popen(c.ctr_cmd("run", "--rm", "--cni", "--mount", mount, "--rootfs", str(rootfs), "ctr-a",
                                   "/bin/sh", "-c", script_a), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
    try:
        # plugin processes take ~1 s each under TCG
        a_ip = runtimes.wait_file(shared / "a.addr", a, timeout=300).split()[3].split("/")[0]
        pid = c.ctr("task", "ls").stdout.splitlines()[1].split()[1]
        link = json.loads(runtimes.run(["nsenter", f"--net=/proc/{pid}/ns/net", "ip", "-j", "-d", "link", "show",
                                        "eth0"]).stdout)[0]
        assert link["linkinfo"]["info_kind"] == "ipvlan" and link["linkinfo"]["info_data"]["mode"] == "l2"
        b = subprocess.run(c.ctr_cmd("run", "--rm", "--cni", "--mount", mount, "--rootfs", str(rootfs), "ctr-b",
                                     "/bin/sh", "-c", f"ping -c 2 -W 3 {a_ip}; echo rc=$?; "
                                                      "touch /shared/done"),
                           capture_output=True, text=True, timeout=600)
        assert b.returncode == 0 and "rc=0" in b.stdout, b.stdout + b.stderr
        a.communicate(timeout=300)
        assert a.returncode == 0
    finally:
        (shared / "done").touch()
        if a.poll() is None:
            runtimes.stop_pid(a)
    left = jail.leftovers(NET)
    assert all(v == [] for v in left.values()), left
    assert os.path.isdir(jail.var_dir / "networks" / NET)  # host-local did run here (and released)
