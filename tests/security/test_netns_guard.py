"""Finding 10: CNI_NETNS naming the plugin's own netns is code 8 unless CNI_NETNS_OVERRIDE (Go's skel)."""
from __future__ import annotations

from tests import topology
from tests.security.conftest import cni_error, link_names, macvlan

GO_MSG = "plugin's netns and netns from CNI_NETNS should not be the same"


def test_own_netns_is_refused_before_anything_happens(node):
    # The plugin runs inside `node`'s netns (nsenter), and CNI_NETNS names that same netns.
    before = link_names(node.name)
    err = cni_error(macvlan("ADD", node, node.path))
    assert (err["code"], err["msg"]) == (8, GO_MSG)
    assert link_names(node.name) == before
    # The same through another path to the same namespace: compared by nsfs inode, not by string.
    err = cni_error(macvlan("ADD", node, "/proc/self/ns/net"))
    assert err["code"] == 8


def test_del_and_check_in_own_netns_never_touch_the_host_link(node):
    topology.sh("ip", "-n", node.name, "link", "add", "net1", "link", "eth0", "type", "macvlan")
    assert cni_error(macvlan("DEL", node, node.path))["code"] == 8
    assert "net1" in link_names(node.name)  # a DEL there would have removed the host's own net1
    assert cni_error(macvlan("CHECK", node, node.path))["code"] == 8


def test_override_lets_a_caller_mean_it(node):
    for value in ("1", "true", "TRUE"):
        r = macvlan("ADD", node, node.path, ifname="ovr1", extra_env={"CNI_NETNS_OVERRIDE": value})
        assert r.code == 0, r.stdout + r.stderr
        assert "ovr1" in link_names(node.name)
        assert macvlan("DEL", node, node.path, ifname="ovr1", extra_env={"CNI_NETNS_OVERRIDE": value}).code == 0
        assert "ovr1" not in link_names(node.name)
