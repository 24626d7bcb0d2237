"""podman 4.3 with the CNI backend (libcni): our macvlan + host-local followed by Debian's Go `tuning` in one
conflist. Two containers ping each other, the chained Go plugin applied its sysctl on top of our result, a
`podman restart` (DEL then ADD through libcni, same container ID) keeps the pool consistent, and `podman rm`
releases everything. Config, storage and CNI dirs are all private (runtimes.Podman, runtimes.Jail)."""
from __future__ import annotations

import ipaddress
import json
import os

from tests.e2e import runtimes

NET = "e2e-pod"
SUBNET = "10.62.0.0/24"


def conflist(master: str) -> dict:
    return {"cniVersion": "1.0.0", "name": NET, "plugins": [
        {"type": "macvlan", "master": master, "mode": "bridge",
         "ipam": {"type": "host-local", "ranges": [[{"subnet": SUBNET}]]}},
        {"type": "tuning", "sysctl": {"net.ipv4.conf.eth0.arp_notify": "1"}, "mtu": 1400}]}


def _ip(podman, name: str) -> str:
    out = podman("exec", name, "ip", "-o", "-4", "addr", "show", "eth0").stdout
    return out.split()[3].split("/")[0]


def _cid(podman, name: str) -> str:
    return podman("inspect", "--format", "{{.Id}}", name).stdout.strip()


def test_podman_two_containers_chained_go_plugin_restart(podman, jail, master, rootfs, cni_bin):
    assert os.path.realpath(cni_bin / "macvlan").startswith(os.path.realpath(cni_bin.parent / "lib"))
    jail.write_conf(f"{NET}.conflist", conflist(master))
    for name in ("pa", "pb"):  # --rootfs makes the first positional argument a rootfs directory, not an image
        podman("run", "-d", "--network", NET, "--name", name, "--rootfs", str(rootfs), "/bin/sleep", "600")
    a, b = _ip(podman, "pa"), _ip(podman, "pb")
    assert a != b and all(ipaddress.ip_address(x) in ipaddress.ip_network(SUBNET) for x in (a, b))
    assert jail.leases(NET) == {a: _cid(podman, "pa"), b: _cid(podman, "pb")}

    ping = podman("exec", "pb", "ping", "-c", "3", "-W", "2", a, check=False)
    assert ping.returncode == 0 and " 0% packet loss" in ping.stdout, ping.stdout + ping.stderr
    # tuning ran after us on our prevResult: its sysctl and MTU are on the interface we created.
    assert podman("exec", "pa", "cat", "/proc/sys/net/ipv4/conf/eth0/arp_notify").stdout.strip() == "1"
    link = json.loads(runtimes.run(jail.cmd("nsenter", f"--net={_netns(podman, 'pa')}",
                                            "ip", "-j", "-d", "link", "show", "eth0")).stdout)[0]
    assert link["mtu"] == 1400 and link["linkinfo"]["info_kind"] == "macvlan"
    # libcni's result cache holds the whole chain's result for each attachment.
    cached = {p.name for p in (jail.var_dir / "results").iterdir()}
    assert cached == {f"{NET}-{_cid(podman, n)}-eth0" for n in ("pa", "pb")}

    # restart = libcni DEL (from the cached result) then ADD with the same container ID: one lease per
    # container, none leaked, and the two containers still reach each other.
    podman("restart", "-t", "0", "pa")
    a2 = _ip(podman, "pa")
    leases = jail.leases(NET)
    assert sorted(leases.values()) == sorted([_cid(podman, "pa"), _cid(podman, "pb")]), leases
    assert leases[a2] == _cid(podman, "pa") and leases[b] == _cid(podman, "pb")
    ping = podman("exec", "pa", "ping", "-c", "2", "-W", "2", b, check=False)
    assert ping.returncode == 0, ping.stdout + ping.stderr

    podman("rm", "-f", "-t", "0", "pa", "pb")
    left = jail.leftovers(NET)
    assert all(v == [] for v in left.values()), left


def _netns(podman, name: str) -> str:
    return podman("inspect", "--format", "{{.NetworkSettings.SandboxKey}}", name).stdout.strip()
