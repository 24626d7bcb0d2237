"""Property: any sequence of ADD / DEL / GC (and changes made by another binary) keeps the store honest.

Invariants after every step: no address held twice, every held address has exactly its file, one address
per range set per attachment, and ADD answers as a model says (new address, duplicate 100, exhausted 11).
Runs the plugin in-process (skel.call, as the core's in-process IPAM path does) so hypothesis can explore.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile

from hypothesis import settings, strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from cni_rdma import skel
from cni_rdma.errors import CniError
from ipam.host_local import host_local

CIDS = [f"c{i}" for i in range(7)]
IFNAMES = ["eth0", "net1"]
V4 = [f"10.66.0.{i}" for i in range(2, 7)]           # 10.66.0.0/29: gateway .1, broadcast .7
V6 = [f"fd66::{i}" for i in range(2, 8)]              # fd66::/125: gateway ::1


class HostLocalMachine(RuleBasedStateMachine):
    def __init__(self):
        super().__init__()
        self.dir = tempfile.mkdtemp(prefix="hl-prop-")
        self.net = os.path.join(self.dir, "net")
        self.conf = {"cniVersion": "1.1.0", "name": "net", "type": "x",
                     "ipam": {"type": "host-local", "dataDir": self.dir,
                              "ranges": [[{"subnet": "10.66.0.0/29"}], [{"subnet": "fd66::/125"}]]}}
        self.held: dict[tuple[str, str], set[str]] = {}

    def teardown(self):
        shutil.rmtree(self.dir, ignore_errors=True)

    def call(self, command, cid="", ifname="", extra=None):
        env = {"CNI_COMMAND": command, "CNI_CONTAINERID": cid, "CNI_NETNS": "/x", "CNI_IFNAME": ifname,
               "CNI_PATH": "/nonexistent"}
        return skel.call(host_local, env, json.dumps(dict(self.conf, **(extra or {}))).encode())

    def taken(self) -> set[str]:
        return {ip for ips in self.held.values() for ip in ips}

    @rule(cid=st.sampled_from(CIDS), ifname=st.sampled_from(IFNAMES))
    def add(self, cid, ifname):
        free4 = [ip for ip in V4 if ip not in self.taken()]
        free6 = [ip for ip in V6 if ip not in self.taken()]
        try:
            res = self.call("ADD", cid, ifname)
        except CniError as e:
            if (cid, ifname) in self.held:
                assert e.code == 100, e
            else:
                assert e.code == 11 and not (free4 and free6), (e, free4, free6)
            return
        assert (cid, ifname) not in self.held
        got = [str(ip.address.ip) for ip in res.ips]
        assert len(got) == 2 and got[0] in free4 and got[1] in free6, (got, free4, free6)
        self.held[(cid, ifname)] = set(got)

    @rule(cid=st.sampled_from(CIDS), ifname=st.sampled_from(IFNAMES))
    def delete(self, cid, ifname):
        self.call("DEL", cid, ifname)
        self.held.pop((cid, ifname), None)

    @rule(cid=st.sampled_from(CIDS), ifname=st.sampled_from(IFNAMES))
    def check(self, cid, ifname):
        try:
            self.call("CHECK", cid, ifname)
            assert (cid, ifname) in self.held
        except CniError as e:
            assert e.code == 101 and (cid, ifname) not in self.held

    @rule(keep=st.sets(st.sampled_from([(c, i) for c in CIDS for i in IFNAMES])))
    def gc(self, keep):
        valid = [{"containerID": c, "ifname": i} for c, i in sorted(keep)]
        self.call("GC", extra={"cni.dev/valid-attachments": valid})
        self.held = {k: v for k, v in self.held.items() if k in keep}

    @rule(data=st.data())
    def other_binary_releases(self, data):
        """As the Go host-local's DEL would: the files go, our index is not told."""
        if not self.held:
            return
        owner = data.draw(st.sampled_from(sorted(self.held)))
        for ip in self.held.pop(owner):
            os.unlink(os.path.join(self.net, ip))

    @rule(cid=st.sampled_from(["g1", "g2"]), ip=st.sampled_from(V4))
    def other_binary_reserves(self, cid, ip):
        """As the Go host-local's ADD would (exclusive create), right after our last change."""
        if (cid, "eth0") in self.held or ip in self.taken():
            return
        os.makedirs(self.net, exist_ok=True)
        fd = os.open(os.path.join(self.net, ip), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        os.write(fd, f"{cid}\r\neth0".encode())
        os.close(fd)
        self.held[(cid, "eth0")] = {ip}

    @invariant()
    def store_matches_model(self):
        files = {}
        if os.path.isdir(self.net):
            for name in os.listdir(self.net):
                if name == "lock" or name.startswith("last_reserved_ip."):
                    continue
                with open(os.path.join(self.net, name), "rb") as f:
                    files[name] = f.read().decode()
        want = {ip: f"{c}\r\n{i}" for (c, i), ips in self.held.items() for ip in ips}
        assert files == want
        ips = [ip for v in self.held.values() for ip in v]
        assert len(ips) == len(set(ips))  # no address held twice


HostLocalMachine.TestCase.settings = settings(max_examples=60, stateful_step_count=30, deadline=None)
TestHostLocalProperties = HostLocalMachine.TestCase
