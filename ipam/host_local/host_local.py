"""host-local: IPAM from local ranges, a drop-in for the Go plugin of the same name (same config, same files).

ADD reserves one address per range set (round-robin, requested addresses honoured), DEL releases every
address of (containerID, ifname), CHECK proves the reservation is still ours. Beyond Go: GC releases
whatever `cni.dev/valid-attachments` does not list, STATUS reports an unwritable store or an exhausted
range (code 50), and lookups go through an owner index instead of reading every file (see store.py).

Error codes: 7 bad config (the message names the field), 11 range exhausted or requested address taken
(both clear up as pods go away), 5 store I/O, 100 duplicate ADD for one (containerID, ifname),
101 CHECK found no reservation, 50 STATUS. Go's host-local prints 999 for all of these.
"""
from __future__ import annotations

import posix

from cni_rdma import paths
from cni_rdma.confkeys import gc_keep
from cni_rdma.errors import INVALID_CONFIG, NOT_AVAILABLE, PLUGIN, CniError
from cni_rdma.skel import Request
from cni_rdma.types import DNS, IPConfig, Result

from . import config
from .store import ReservationStore, ip_key

ABOUT = "cni-rdma host-local IPAM"
DUPLICATE = PLUGIN
NOT_FOUND = PLUGIN + 1
# Imported inside add() and status(), the two commands that walk a range for a free address: a DEL (also CHECK, GC)
# releases what the store lists. Frozen, these commands run it with this module's own imports (cni_rdma.bundled).
COMMAND_IMPORTS = {"ADD": ("ipam.host_local.allocator",), "STATUS": ("ipam.host_local.allocator",)}


def load_conf(req: Request) -> config.Config:
    """The ipam keys (and CNI_ARGS IP=) of this call, validated; config.load is the raw-dict parser under it."""
    config.check_names(req.conf.name, req.container_id)
    return config.load(req.raw, req.args({"IP"}), req.conf.cni_version)


def _in_set(rs: config.RangeSet, ip: str) -> bool:
    key = ip_key(ip)
    return key is not None and config.rangeset_for(rs, *key) is not None


def _held(store: ReservationStore, cid: str, ifname: str) -> list[str]:
    """What the index lists for the owner, confirmed against the reservation files themselves."""
    return [ip for ip in store.owned(cid, ifname) if store.holder(ip) == (cid, ifname)]


def add(req: Request) -> Result:
    from .allocator import allocate  # see COMMAND_IMPORTS

    conf = load_conf(req)
    dns = config.parse_resolv_conf(conf.resolv_conf) if conf.resolv_conf else DNS()
    cid, ifname = req.container_id, req.ifname
    pending = {r.text: r for r in conf.requested}
    ips: list[IPConfig] = []
    with ReservationStore(conf.data_dir, conf.name, req.log) as store:
        held = _held(store, cid, ifname)
        held_any = held + _held(store, cid, "")  # pre-0.7 one-line files count as this container's too
        reserved: list[str] = []
        try:
            for idx, rs in enumerate(conf.ranges):
                dup = next((ip for ip in held_any if _in_set(rs, ip)), None)
                if dup:
                    raise CniError(DUPLICATE, f"failed to allocate for range {idx}: {dup} has been allocated to "
                                   f"{cid}, duplicate allocation is not allowed")
                want = next((r for r in pending.values() if config.rangeset_for(rs, r.version, r.value)), None)
                if want is not None:
                    within = config.rangeset_for(rs, want.version, want.value)
                    if within is not None:
                        config.check_requested_prefix(want, within)
                    del pending[want.text]
                r, value = allocate(store, rs, idx, cid, ifname, want)
                reserved.append(r.address(value))
                ips.append(IPConfig(address=r.interface(value), gateway=r.gateway_ip()))
            if pending:
                left = ", ".join(f"{r.text} (from {r.source})" for r in pending.values())
                raise CniError(INVALID_CONFIG, f"failed to allocate all requested IPs: {left}: in no range set, or "
                               "its range set already gave the one address it gives to another requested IP")
        except BaseException:
            for ip in reserved:  # a failed ADD leaves nothing behind
                try:
                    store.release(ip)
                except CniError:
                    pass  # the store is marked broken: the index is rebuilt by the next call
            raise
        store.set_owned(cid, ifname, held + reserved)
    req.log.debug(f"reserved {', '.join(reserved)}")
    return Result(cni_version=req.conf.cni_version, ips=tuple(ips), routes=conf.routes, dns=dns)


def delete(req: Request) -> None:
    conf = load_conf(req)
    cid, ifname = req.container_id, req.ifname
    with ReservationStore(conf.data_dir, conf.name, req.log) as store:
        owner = ifname
        held = store.owned(cid, ifname)
        if not held:  # as Go: only when nothing matches exactly, release the legacy one-line files
            owner, held = "", store.owned(cid, "")
        released = [ip for ip in held if store.release(ip, cid, owner)]
        if held:
            store.set_owned(cid, owner, [])
    if released:
        req.log.debug(f"released {', '.join(released)}")


def check(req: Request) -> None:
    conf = load_conf(req)
    cid, ifname = req.container_id, req.ifname
    with ReservationStore(conf.data_dir, conf.name, req.log) as store:
        held = _held(store, cid, ifname) + _held(store, cid, "")
    if not held:
        raise CniError(NOT_FOUND, f"host-local: Failed to find address added by container {cid}",
                       f"no reservation for {cid}/{ifname} in {store.path}")
    prev = req.conf.prev_result
    for ipc in prev.ips if prev is not None else ():
        ip = str(ipc.address.ip)
        if any(_in_set(rs, ip) for rs in conf.ranges) and ip not in held:
            raise CniError(NOT_FOUND, f"host-local: {ip} from prevResult is not reserved for {cid}/{ifname}",
                           f"held: {', '.join(held)}")


def status(req: Request) -> None:
    from .allocator import candidates  # see COMMAND_IMPORTS

    conf = load_conf(req)
    store = ReservationStore(conf.data_dir, conf.name)
    try:
        store.open(lock=False)
    except CniError as e:
        raise CniError(NOT_AVAILABLE, f"host-local store {store.path} is not usable: {e}") from None
    try:
        for path in (store.path, paths.join(conf.data_dir, ".cni-rdma", conf.name)):
            if not posix.access(path, posix.W_OK):
                raise CniError(NOT_AVAILABLE, f"host-local store {path} is not writable")
        st = posix.statvfs(store.path)
        if st.f_bavail == 0 or (st.f_files and st.f_favail == 0):
            raise CniError(NOT_AVAILABLE, f"host-local store {store.path} has no free space")
        taken = set(store.names())
        for idx, rs in enumerate(conf.ranges):
            # Exhausted iff every candidate is taken: the walk stops at the first free one.
            if all(r.address(v) in taken for r, v in candidates(rs, store.last_reserved(idx))):
                raise CniError(NOT_AVAILABLE, f"host-local range set {idx} ({config.rangeset_str(rs)}) is exhausted")
    finally:
        store.close()


def gc(req: Request) -> None:
    conf = load_conf(req)
    valid = gc_keep(req)
    if valid is None:
        return
    cids = {cid for cid, _ in valid}
    with ReservationStore(conf.data_dir, conf.name, req.log) as store:
        found = store.scan()
        released = []
        for ip, owner in sorted(found.items()):
            if owner is None:
                continue  # not a regular file (a planted symlink, a directory): never ours to remove
            cid, ifname = owner
            keep = (cid, ifname) in valid if ifname else cid in cids
            if not keep and store.release(ip):
                released.append(ip)
                del found[ip]
        store.rebuild(found)
    if released:
        req.log.info(f"GC released {len(released)}: {', '.join(released)}")
