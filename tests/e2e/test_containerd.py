"""containerd 1.6 + go-cni: `ctr run --cni` attaches two containers to a conflist of ours (macvlan + host-local,
both the frozen bundle), they ping each other, and the DEL go-cni sends when each container exits releases
everything (host-local leases, libcni's result cache, our plugin state).

ctr runs CNI itself (go-cni `Setup` between task create and start, `Remove` after the task exits; only in the
foreground, `--detach` never DELs), with the container ID `<namespace>-<id>`, the netns `/proc/<pid>/ns/net`
and ifname `eth0`. The rootfs is a busybox directory (`ctr run --rootfs`): no image, no pull.
"""
from __future__ import annotations

import ipaddress
import subprocess

from tests.e2e import runtimes

NET = "e2e-ctd"
SUBNET = "10.61.0.0/24"


def conflist(master: str) -> dict:
    return {"cniVersion": "1.0.0", "name": NET, "plugins": [
        {"type": "macvlan", "master": master, "mode": "bridge",
         "ipam": {"type": "host-local", "ranges": [[{"subnet": SUBNET}]]}}]}


def test_ctr_run_cni_two_containers_ping_and_release(containerd, jail, master, rootfs, tmp_path):
    jail.write_conf("10-e2e.conflist", conflist(master))
    shared = tmp_path / "shared"
    shared.mkdir()
    mount = f"type=bind,src={shared},dst=/shared,options=rbind:rw"
    # A publishes its address and waits for B's "done"; B pings A and writes the outcome.
    script_a = ("ip -o -4 addr show eth0 > /shared/a.tmp && mv /shared/a.tmp /shared/a.addr; "
                "while [ ! -e /shared/done ]; do sleep 0.1; done")
    a = subprocess.Popen(containerd.ctr_cmd("run", "--rm", "--cni", "--mount", mount, "--rootfs", str(rootfs),
                                            "ctr-a", "/bin/sh", "-c", script_a),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    b = None
    try:
        line = runtimes.wait_file(shared / "a.addr", a)
        a_ip = line.split()[3].split("/")[0]
        assert ipaddress.ip_address(a_ip) in ipaddress.ip_network(SUBNET)
        assert jail.leases(NET) == {a_ip: f"{containerd.namespace}-ctr-a"}
        script_b = (f"ip -o -4 addr show eth0; ping -c 3 -W 2 {a_ip}; echo rc=$? ; touch /shared/done")
        b = subprocess.run(containerd.ctr_cmd("run", "--rm", "--cni", "--mount", mount, "--rootfs", str(rootfs),
                                              "ctr-b", "/bin/sh", "-c", script_b),
                           capture_output=True, text=True, timeout=120)
        assert b.returncode == 0, b.stderr
        assert "rc=0" in b.stdout and " 0% packet loss" in b.stdout, b.stdout
        b_ip = b.stdout.split()[3].split("/")[0]
        assert b_ip != a_ip and ipaddress.ip_address(b_ip) in ipaddress.ip_network(SUBNET)
        out, err = a.communicate(timeout=120)
        assert a.returncode == 0, err
    finally:
        (shared / "done").touch()
        if a.poll() is None:
            runtimes.stop_pid(a)
    # go-cni's Remove on exit: DEL through libcni to both plugins; nothing left anywhere.
    left = jail.leftovers(NET)
    assert all(v == [] for v in left.values()), left
    assert containerd.ctr("task", "ls", "-q").stdout.strip() == ""
