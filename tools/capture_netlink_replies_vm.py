#!/usr/bin/env python3
"""Record real kernel replies that only the VM kernel can give: VF info of a netdevsim PF and RDMA nldev.

Run inside the VM guest (tools/vm shares the repo read-write):
    python -m tools.vm run -- .venv/bin/python tools/capture_netlink_replies_vm.py
Writes tests/unit/data/netlink_replies_vm.json: raw payloads as hex, plus `ip -j -d link show` and
`rdma -j dev/link` / `rdma system` for the same objects, so the unit tier checks our decoders
against iproute2 without a VM.
"""
from __future__ import annotations

import json
import os
import platform
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
from cni_rdma.netlink import core, links, rdma, rtmsg  # noqa: E402
from cni_rdma.netlink.core import NetlinkSocket  # noqa: E402
from tests.vm import guest  # noqa: E402


class _Raw(NetlinkSocket):
    pass


class _RawRdma(NetlinkSocket):
    protocol = 20


def main() -> None:
    if not guest.IN_GUEST:
        sys.exit("run inside the VM guest (python -m tools.vm run -- ...)")
    pf = guest.netdevsim_add(4, ifname="simpf0")
    rxe = None
    try:
        pf.set_vf(0, "mac", "02:00:00:00:0a:00", "vlan", "10", "qos", "3", "spoofchk", "on", "trust", "on",
                  "state", "enable", "min_tx_rate", "0", "max_tx_rate", "1000")
        pf.set_vf(1, "mac", "02:00:00:00:0a:01", "vlan", "20", "qos", "2", "proto", "802.1ad", "spoofchk", "off",
                  "state", "disable", "min_tx_rate", "100", "max_tx_rate", "500")
        with _Raw() as s:
            body = rtmsg.ifinfomsg(pf.ifindex) + core.a_u32(links.IFLA_EXT_MASK,
                                                            links.RTEXT_FILTER_VF | links.RTEXT_FILTER_SKIP_STATS)
            pf_link = s.request(rtmsg.RTM_GETLINK, body, op="get", reply_type=rtmsg.RTM_NEWLINK)[0]
        guest.load_rxe("patched")
        rxe = guest.rxe_add(name="rxecap0")
        with _RawRdma() as s:
            t = rdma.nl_type
            devs = s.dump(t(rdma.RDMA_NLDEV_CMD_GET), b"", op="dump", reply_type=t(rdma.RDMA_NLDEV_CMD_GET))
            ports = []
            for p in devs:
                idx = rdma.decode_device(p).index
                ports += s.dump(t(rdma.RDMA_NLDEV_CMD_PORT_GET), rdma.a_u32(rdma.RDMA_NLDEV_ATTR_DEV_INDEX, idx),
                                op="dump", reply_type=t(rdma.RDMA_NLDEV_CMD_PORT_GET))
            sys_reply = s.request(t(rdma.RDMA_NLDEV_CMD_SYS_GET), b"", op="get",
                                  reply_type=t(rdma.RDMA_NLDEV_CMD_SYS_GET))[0]
        out = {
            "kernel": platform.release(),
            "pf_link": pf_link.hex(),
            "ip_pf_link": pf.link(),
            "rdma_devs": [p.hex() for p in devs],
            "rdma_ports": [p.hex() for p in ports],
            "rdma_sys": sys_reply.hex(),
            "rdma_j_dev": guest.rdma_devs(),
            "rdma_j_link": guest.rdma_links(),
            "rdma_system": guest.rdma_system(),
        }
        path = os.path.join(ROOT, "tests", "unit", "data", "netlink_replies_vm.json")
        with open(path, "w") as f:
            json.dump(out, f, indent=1)
            f.write("\n")
        print(f"wrote {path}")
    finally:
        if rxe is not None:
            guest.rxe_del(rxe)
        guest.netdevsim_del(pf)


if __name__ == "__main__":
    main()
