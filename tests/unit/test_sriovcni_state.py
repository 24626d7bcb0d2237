"""sriov-cni's state files, parsed and written in its exact format (plugins/sriov/sriovcni.py).

The cache below is what sriov-cni (k8snetworkplumbingwg/sriov-cni @1b7acc5) writes for a pod: NetConf
.MarshalJSON (pkg/types/types.go) merges the types.NetConf keys over SriovNetConf's and Go marshals the
map with sorted keys; VfState's fields carry no json tags (so "HostIFName", "AdminMAC", ...), VlanProto
is an ethertype, LinkState a netlink VF_LINK_STATE_* number, the *int fields null when unset, and
spoofchk/trust/link_state are `omitempty`.
"""
from __future__ import annotations

import json
import os
import subprocess
import threading

import pytest

from cni_rdma.errors import CniError
from plugins.sriov import sriovcni

SRIOV_CNI_CACHE = {
    "OrigVfState": {"AdminMAC": "00:00:00:00:00:00", "EffectiveMAC": "02:5a:00:00:00:11", "HostIFName": "ens1f0v1",
                    "LinkState": 0, "MTU": 1500, "MaxTxRate": 0, "MinTxRate": 0, "SpoofChk": True, "Trust": False,
                    "Vlan": 0, "VlanProto": 33024, "VlanQoS": 0},
    "Master": "ens1f0", "MAC": "02:00:00:00:00:aa", "MTU": 1500, "VFID": 1, "cniVersion": "1.0.0",
    "deviceID": "0000:3b:00.3", "dns": {}, "ipam": {"type": "host-local", "subnet": "10.56.0.0/16"},
    "logFile": "", "logLevel": "", "max_tx_rate": None, "min_tx_rate": 100, "name": "sriov-net",
    "runtimeConfig": {}, "spoofchk": "off", "trust": "on", "type": "sriov", "vlan": 100, "vlanProto": "802.1ad",
    "vlanQoS": 3,
}


def test_parse_a_cache_as_sriov_cni_writes_it():
    c = sriovcni.parse_cache(json.dumps(SRIOV_CNI_CACHE, sort_keys=True).encode())
    assert (c.device_id, c.master, c.vf_id, c.mac, c.mtu, c.ipam_type) == (
        "0000:3b:00.3", "ens1f0", 1, "02:00:00:00:00:aa", 1500, "host-local")
    assert (c.vlan, c.vlan_qos, c.vlan_proto, c.spoofchk, c.trust, c.link_state) == (100, 3, "802.1ad", "off", "on", "")
    assert (c.orig.host_ifname, c.orig.effective_mac, c.orig.mtu, c.orig.vlan_proto) == (
        "ens1f0v1", "02:5a:00:00:00:11", 1500, 0x8100)
    # ResetVFConfig: vlan (set), spoofchk (set), admin MAC (recorded), trust (set), rates (one was set); not link_state
    assert c.pf_restore() == {"vlan": 0, "qos": 0, "vlan_proto": "802.1Q", "spoofchk": True,
                              "mac": "00:00:00:00:00:00", "trust": False, "min_tx_rate": 0, "max_tx_rate": 0}
    # ReleaseVF: the host name, effective MAC and MTU back; left down
    assert c.netdev_restore() == {"name": "ens1f0v1", "mac": "02:5a:00:00:00:11", "mtu": 1500, "up": False}


def test_minimal_cache_restores_only_what_was_set():
    d = dict(SRIOV_CNI_CACHE, vlan=None, vlanQoS=None, vlanProto=None, min_tx_rate=None, max_tx_rate=None)
    for key in ("spoofchk", "trust"):
        del d[key]
    d["OrigVfState"] = dict(d["OrigVfState"], AdminMAC="", MTU=0, EffectiveMAC="")
    c = sriovcni.parse_cache(json.dumps(d).encode())
    assert c.pf_restore() == {}
    assert c.netdev_restore() == {"name": "ens1f0v1", "mac": None, "mtu": None, "up": False}


def test_keys_match_case_insensitively_like_go():
    d = {k.lower(): v for k, v in SRIOV_CNI_CACHE.items()}
    d["origvfstate"] = {k.lower(): v for k, v in SRIOV_CNI_CACHE["OrigVfState"].items()}
    c = sriovcni.parse_cache(json.dumps(d).encode())
    assert c.device_id == "0000:3b:00.3" and c.orig.host_ifname == "ens1f0v1" and c.vf_id == 1


def test_render_round_trips_and_keeps_sriov_cni_field_names():
    c = sriovcni.parse_cache(json.dumps(SRIOV_CNI_CACHE).encode())
    netconf = {k: SRIOV_CNI_CACHE[k] for k in ("cniVersion", "name", "type", "ipam", "dns")}
    out = json.loads(sriovcni.render_cache(c, netconf))
    assert out == {k: v for k, v in SRIOV_CNI_CACHE.items() if k not in ("logFile", "logLevel")}
    again = sriovcni.parse_cache(sriovcni.render_cache(c, netconf))
    assert again.pf_restore() == c.pf_restore() and again.netdev_restore() == c.netdev_restore()


@pytest.mark.parametrize("mutate, field", [
    (lambda d: d.update(deviceID="af:00.2"), "deviceID"),
    (lambda d: d.update(VFID="1"), "VFID"),
    (lambda d: d.update(vlan=True), "vlan"),
    (lambda d: d["OrigVfState"].update(HostIFName=5), "OrigVfState.HostIFName"),
    (lambda d: d.update(OrigVfState=None), "OrigVfState"),
])
def test_bad_cache_is_an_error_naming_the_field(mutate, field):
    d = json.loads(json.dumps(SRIOV_CNI_CACHE))
    mutate(d)
    with pytest.raises(sriovcni.CacheError) as e:
        sriovcni.parse_cache(json.dumps(d).encode(), "/x")
    assert field in e.value.msg and e.value.code == 5


def test_cache_files_on_disk(tmp_path):
    root = str(tmp_path)
    assert sriovcni.load_cache("abc", "net1", root) is None
    (tmp_path / "abc-net1").write_text(json.dumps(SRIOV_CNI_CACHE))
    assert sriovcni.load_cache("abc", "net1", root).device_id == "0000:3b:00.3"
    (tmp_path / "other-net2").write_text(json.dumps(dict(SRIOV_CNI_CACHE, deviceID="0000:3b:00.4")))
    (tmp_path / "junk-net3").write_text("{")
    (tmp_path / "vf-0000:3b:00.3").write_text(json.dumps(SRIOV_CNI_CACHE))  # ours: never read as theirs
    assert [n for n, _ in sriovcni.caches_for_device("0000:3b:00.3", root)] == ["abc-net1"]
    sriovcni.drop_cache("abc", "net1", root)
    assert not (tmp_path / "abc-net1").exists()
    with pytest.raises(CniError):
        sriovcni.cache_name("../etc", "passwd/x")


def test_untrusted_files_symlink_fifo_oversize(tmp_path):
    root = str(tmp_path)
    (tmp_path / "target").write_text(json.dumps(SRIOV_CNI_CACHE))
    os.symlink(tmp_path / "target", tmp_path / "sym-net1")
    with pytest.raises(sriovcni.CacheError):
        sriovcni.load_cache("sym", "net1", root)
    os.mkfifo(tmp_path / "fifo-net1")  # a reader that blocked here would hang the plugin
    with pytest.raises(sriovcni.CacheError) as e:
        sriovcni.load_cache("fifo", "net1", root)
    assert "not a regular file" in e.value.msg
    (tmp_path / "big-net1").write_bytes(b" " * (sriovcni.MAX_CACHE + 1))
    with pytest.raises(sriovcni.CacheError):
        sriovcni.load_cache("big", "net1", root)


def test_claims(tmp_path):
    root = str(tmp_path)
    assert sriovcni.read_claim("0000:3b:00.3", root) is None
    sriovcni.save_claim("0000:3b:00.3", "/var/run/netns/pod-a", root)
    assert (tmp_path / "pci" / "0000:3b:00.3").read_bytes() == b"/var/run/netns/pod-a"  # sriov-cni: no newline
    assert sriovcni.read_claim("0000:3b:00.3", root) == "/var/run/netns/pod-a"
    sriovcni.drop_claim("0000:3b:00.3", root, netns_path="/var/run/netns/pod-b")  # a newer pod's claim stays
    assert sriovcni.read_claim("0000:3b:00.3", root) == "/var/run/netns/pod-a"
    sriovcni.drop_claim("0000:3b:00.3", root, netns_path="/var/run/netns/pod-a")
    assert sriovcni.read_claim("0000:3b:00.3", root) is None
    with pytest.raises(CniError):
        sriovcni.claim_path("../../etc/passwd", root)


def test_lock_is_sriov_cnis_flock(tmp_path):
    """flock(1) on pci/vf_lock/<pci>.lock stands in for a running sriov-cni (unix.Flock LOCK_EX there)."""
    root = str(tmp_path)
    with sriovcni.pci_lock("0000:3b:00.3", root):
        pass
    lock = tmp_path / "pci" / "vf_lock" / "0000:3b:00.3.lock"
    assert lock.is_file()
    # -o: the lock stays with flock itself (not inherited by sleep), so killing flock releases it
    holder = subprocess.Popen(["flock", "-o", "-x", str(lock), "sleep", "30"], start_new_session=True)
    try:
        for _ in range(250):  # until the holder has it
            if subprocess.run(["flock", "-n", "-x", str(lock), "true"]).returncode != 0:
                break
            threading.Event().wait(0.02)
        with pytest.raises(CniError) as e:
            with sriovcni.pci_lock("0000:3b:00.3", root, timeout=0.3):
                pass
        assert e.value.code == 11
    finally:
        os.killpg(holder.pid, 9)  # flock and its sleep
        holder.wait()
    with sriovcni.pci_lock("0000:3b:00.3", root, timeout=5):
        pass


def test_sriov_cni_attachment_as_our_record_and_back():
    """to_vf_state: our restore puts back exactly what sriov-cni's DEL would; from_vf_state: the cache we
    write for our own record makes sriov-cni's DEL put back the same things."""
    c = sriovcni.parse_cache(json.dumps(SRIOV_CNI_CACHE).encode())
    st = sriovcni.to_vf_state(c, "cid1", "net1", "/var/run/netns/p", "0000:3b:00.0")
    assert st.restore_pf() == {"vlan": 0, "qos": 0, "vlan_proto": "802.1Q", "spoofchk": True,
                               "mac": "00:00:00:00:00:00", "trust": False, "min_tx_rate": 0, "max_tx_rate": 0}
    assert (st.orig.host_ifname, st.orig.effective_mac, st.orig.mtu, st.orig.up) == ("ens1f0v1", "02:5a:00:00:00:11",
                                                                                    1500, False)
    assert st.known_macs() == {"02:5a:00:00:00:11", "02:00:00:00:00:aa"}  # how restore recognises the VF
    back = sriovcni.from_vf_state(st)
    assert back.pf_restore() == c.pf_restore() and back.netdev_restore() == c.netdev_restore()
    assert (back.device_id, back.master, back.vf_id, back.vlan, back.vlan_proto) == ("0000:3b:00.3", "ens1f0", 1,
                                                                                       100, "802.1ad")
    dpdk = sriovcni.to_vf_state(c, "cid1", "net1", "/var/run/netns/p", dpdk=True)
    assert dpdk.orig.host_ifname == "" and dpdk.dpdk


def test_remember_writes_claim_and_cache_or_says_why_not(tmp_path):
    c = sriovcni.parse_cache(json.dumps(SRIOV_CNI_CACHE).encode())
    root = str(tmp_path / "sriov")
    st = sriovcni.to_vf_state(c, "cid1", "net1", "/var/run/netns/p")
    assert sriovcni.remember(st, {"cniVersion": "1.0.0", "name": "n", "type": "sriov"}, root) == ""
    assert (tmp_path / "sriov" / "cid1-net1").is_file()
    assert sriovcni.read_claim(st.device_id, root) == "/var/run/netns/p"
    odd = sriovcni.to_vf_state(c, "cid2", "net@1", "/var/run/netns/q")
    assert "no file name" in sriovcni.remember(odd, {}, root)
    assert sriovcni.read_claim(st.device_id, root) == "/var/run/netns/q"  # the claim is still written
    dpdk = sriovcni.to_vf_state(c, "cid3", "net1", "/var/run/netns/r", dpdk=True)
    assert sriovcni.remember(dpdk, {}, root) == "a DPDK VF" and not (tmp_path / "sriov" / "cid3-net1").exists()
