"""`cni-rdma state` and `cni-rdma ipam`: what the plugins hold on this node and whether its pod still exists.

Sources, all read-only until a release is asked for:
  plugin records   <state dir>/<plugin>/*   sriov (VF allocations), rdma (RDMA device moves), ipvlan, ...:
                   JSON records naming containerID, ifname and the pod's netns
  reservations     <ipam dir>/<network>/<ip>   host-local's files ("<containerID>\\r\\n<ifname>")
  result cache     <cache dir>/results/*       libcni's cache: the attachment's sandbox netns
A reservation's netns comes from the cache entry or a plugin record of the same container and ifname; when
neither exists it is "unknown" (never released automatically: `ipam release` names it explicitly).

Liveness: a netns path that still is a namespace (nsfs) is alive; a path that is gone or a plain file is gone.
"""
from __future__ import annotations

import json
import os
import sys
from typing import Any, Optional

from .common import CliError, list_dir, netns_alive, one_line, read_file

ALIVE, GONE, UNKNOWN = "alive", "gone", "unknown"
NOT_RECORDS = frozenset({"networks", "results"})  # host-local's default data dir and libcni's cache live here too


def _state(netns: Optional[str]) -> str:
    if not netns:
        return UNKNOWN
    return ALIVE if netns_alive(netns) else GONE


def _first(rec: dict, *keys: str) -> str:
    for k in keys:
        v = rec.get(k)
        if isinstance(v, (str, int)) and v != "":
            return str(v)
    return ""


def plugin_records(state_dir: str) -> list[dict[str, Any]]:
    """Every plugin record under the state dir (sriov, rdma, ipvlan, ...), with its netns state."""
    out = []
    for plugin in list_dir(state_dir):
        pdir = os.path.join(state_dir, plugin)
        if plugin in NOT_RECORDS or plugin.startswith(".") or os.path.islink(pdir) or not os.path.isdir(pdir):
            continue
        for name in list_dir(pdir):
            if name.endswith((".lock", ".tmp")) or name.startswith("."):
                continue
            path = os.path.join(pdir, name)
            try:
                rec = json.loads(read_file(path, 1 << 20))
            except (CliError, ValueError):
                continue
            if not isinstance(rec, dict):
                continue
            netns = _first(rec, "netns")
            out.append({
                "plugin": plugin, "record": name, "network": _first(rec, "network"),
                "container": _first(rec, "containerID", "container_id"), "ifname": _first(rec, "ifname"),
                "netns": netns, "state": _state(netns),
                "device": _first(rec, "deviceID", "device_id", "containerRdmaDevName"),
                "detail": _detail(plugin, rec),
            })
    return out


def _detail(plugin: str, rec: dict) -> str:
    if plugin == "sriov":
        return f"PF {_first(rec, 'pf')} VF {_first(rec, 'vf_id')}" + (" dpdk" if rec.get("dpdk") else "") + \
            (f" ({rec['phase']})" if rec.get("phase") not in (None, "", "added") else "")
    if plugin == "rdma":
        return f"RDMA device {_first(rec, 'containerRdmaDevName', 'sandboxRdmaDevName')}"
    return ""


def cache_netns(cache_dir: str) -> dict[tuple[str, str, str], str]:
    """(network, containerID, ifname) -> sandbox netns, from libcni's result cache."""
    out = {}
    results = os.path.join(cache_dir, "results")
    for name in list_dir(results):
        try:
            entry = json.loads(read_file(os.path.join(results, name), 1 << 20))
        except (CliError, ValueError):
            continue
        if not isinstance(entry, dict) or not isinstance(entry.get("result"), dict):
            continue
        ifaces = entry["result"].get("interfaces") or []
        netns = next((i.get("sandbox") for i in ifaces if isinstance(i, dict) and i.get("sandbox")), "")
        if netns:
            out[(str(entry.get("networkName")), str(entry.get("containerId")), str(entry.get("ifName")))] = netns
    return out


def reservations(ipam_dir: str, cache_dir: str, records: list[dict[str, Any]],
                 only: Optional[str] = None) -> dict[str, list[dict[str, Any]]]:
    """network -> host-local reservations with their owner and netns state."""
    from ipam.host_local.store import ReservationStore, ip_key

    cached = cache_netns(cache_dir)
    by_owner = {(r["container"], r["ifname"]): r["netns"] for r in records if r["netns"]}
    out: dict[str, list[dict[str, Any]]] = {}
    for network in list_dir(ipam_dir):
        if network.startswith(".") or (only and network != only):
            continue
        if os.path.islink(os.path.join(ipam_dir, network)) or not os.path.isdir(os.path.join(ipam_dir, network)):
            continue
        try:
            with ReservationStore(ipam_dir, network) as store:  # under host-local's own lock: a consistent snapshot
                found = store.scan()
        except Exception as e:  # CniError from the store: a broken network dir is reported, not fatal
            out[network] = [{"error": one_line(getattr(e, "msg", e))}]
            continue
        rows = []
        for ip, owner in sorted(found.items(), key=lambda kv: ip_key(kv[0]) or (0, 0)):
            cid, ifname = owner if owner else ("", "")
            netns = cached.get((network, cid, ifname)) or by_owner.get((cid, ifname), "")
            rows.append({"ip": ip, "container": cid, "ifname": ifname, "netns": netns,
                         "state": _state(netns) if owner else UNKNOWN})
        out[network] = rows
    return out


def network_ranges(conf_dir: str, network: str) -> Optional[list[dict[str, Any]]]:
    """The host-local ranges of a network from the conf dir: [{range, capacity}], None if not found."""
    from cni_rdma.errors import CniError
    from ipam.host_local import config as hl

    from .doctor import scan_confs

    nets, _ = scan_confs(conf_dir)
    for n in nets:
        if n["name"] != network:
            continue
        for ipam in n["ipam_conf"]:
            if ipam.get("type") not in ("host-local", "cluster-ipam"):
                continue
            try:
                conf = hl.load({"name": network, "cniVersion": "1.0.0", "ipam": ipam}, {}, "1.0.0")
            except CniError:
                return None
            return [{"range": hl.rangeset_str(rs), "capacity": sum(r.capacity() for r in rs)} for rs in conf.ranges]
    return None


def release(ipam_dir: str, network: str, ips: list[str]) -> list[str]:
    """Release the reservations named (only while their owner is still the one listed); returns the released."""
    from ipam.host_local.store import ReservationStore

    done = []
    with ReservationStore(ipam_dir, network) as store:
        found = store.scan()
        for ip in ips:
            owner = found.get(ip)
            if owner and store.release(ip, owner[0], owner[1]):
                done.append(ip)
                del found[ip]
        store.rebuild(found)
    return done


def _plugin_gc(module_name: str, conf: dict) -> Optional[str]:
    """Run one plugin's GC in this process (the bundle holds every plugin); an error message or None."""
    import importlib

    from cni_rdma import skel
    from cni_rdma.errors import CniError

    env = {"CNI_COMMAND": "GC", "CNI_PATH": os.path.dirname(os.path.realpath(sys.argv[0])) or "/"}
    try:
        skel.call(importlib.import_module(module_name), env, json.dumps(conf).encode())
    except CniError as e:
        return f"{conf['type']} GC: {e.msg}" + (f"; {e.details}" if e.details else "")
    return None


def gc(state_dir: str, ipam_dir: str, cache_dir: str, dry_run: bool) -> tuple[list[str], list[str]]:
    """Release what belongs to pods whose netns is gone. Returns (actions, errors)."""
    from cni_rdma.state import DEFAULT_ROOT

    records = plugin_records(state_dir)
    actions: list[str] = []
    errors: list[str] = []
    gone = [r for r in records if r["state"] == GONE]
    for r in gone:
        what = f"{r['plugin']} record {r['record']} ({r['container']} {r['ifname']}, netns {r['netns']} gone)"
        if r["plugin"] not in ("sriov", "rdma"):
            actions.append(f"leave {what}: no GC for {r['plugin']} records")
        elif r["plugin"] == "sriov" and os.path.realpath(state_dir) != os.path.realpath(DEFAULT_ROOT):
            actions.append(f"leave {what}: sriov keeps its records under {DEFAULT_ROOT} only")
        else:
            actions.append(("would release " if dry_run else "release ") + what)
    if not dry_run:
        keep = [{"containerID": r["container"], "ifname": r["ifname"]} for r in records if r["state"] != GONE]
        if any(r["plugin"] == "sriov" for r in gone) and \
                os.path.realpath(state_dir) == os.path.realpath(DEFAULT_ROOT):
            err = _plugin_gc("plugins.sriov.sriov", {"cniVersion": "1.1.0", "name": "cni-rdma-state-gc",
                                                     "type": "sriov", "cni.dev/valid-attachments": keep})
            if err:
                errors.append(err)
        for network in sorted({r["network"] for r in gone if r["plugin"] == "rdma" and r["network"]}):
            conf = {"cniVersion": "1.1.0", "name": network, "type": "rdma", "cni.dev/valid-attachments": keep}
            if os.path.realpath(state_dir) != os.path.realpath(DEFAULT_ROOT):
                conf["dataDir"] = os.path.abspath(state_dir)
            err = _plugin_gc("plugins.rdma.rdma", conf)
            if err:
                errors.append(err)
    for network, rows in reservations(ipam_dir, cache_dir, records).items():
        dead = [r for r in rows if r.get("state") == GONE]
        for r in dead:
            actions.append(("would release " if dry_run else "release ") +
                           f"{network} {r['ip']} ({r['container']} {r['ifname']}, netns {r['netns']} gone)")
        if dead and not dry_run:
            try:
                release(ipam_dir, network, [r["ip"] for r in dead])
            except Exception as e:
                errors.append(f"{network}: {one_line(getattr(e, 'msg', e))}")
    return actions, errors
