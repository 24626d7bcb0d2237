"""containerd 1.6 + go-cni: `ctr run --cni` attaches two containers to a conflist of ours (macvlan + host-local,
both the frozen bundle), they ping each other, and the DEL go-cni sends when each container exits releases
everything (host-local leases, libcni's result cache, our plugin state).

ctr runs CNI itself (go-cni `Setup` between task create and start, `Remove` after the task exits; only in the
foreground, `--detach` never DELs), with the container ID `<namespace>-<id>`, the netns `/proc/<pid>/ns/net`
and ifname `eth0`. The rootfs is a busybox directory (`ctr run --rootfs`): no image, no pull.
"""
from __future__ import annotations

import ipaddress

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

    def a_up(a_ip: str) -> None:
        assert ipaddress.ip_address(a_ip) in ipaddress.ip_network(SUBNET)
        assert jail.leases(NET) == {a_ip: f"{containerd.namespace}-ctr-a"}

    # A publishes its address and waits for B's "done"; B pings A; go-cni's Remove on each exit: DEL through
    # libcni to both plugins, nothing left anywhere (checked by the helper).
    a_ip, b_out = runtimes.ctr_run_pair(containerd, rootfs, shared, NET, on_a_up=a_up)
    assert " 0% packet loss" in b_out, b_out
    b_ip = b_out.split()[3].split("/")[0]
    assert b_ip != a_ip and ipaddress.ip_address(b_ip) in ipaddress.ip_network(SUBNET)
