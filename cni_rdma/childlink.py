"""A child link of a master (macvlan, ipvlan) for a pod: find the master, create, roll back, delete.

    master = childlink.find_master(req.netns, conf.master, conf.link_in_container)
    with childlink.created(req.netns, req.ifname, make, conf.link_in_container) as link:
        ...                              # any exception in here deletes the link again

`make(nl, tmp_name, netns_fd)` creates the link (nl: a `LinkOps` socket): on the host socket with netns_fd =
the pod's netns (the kernel creates it straight in the pod, looking the parent up on the host), or, when the
master lives in the pod (linkInContainer), on a socket inside the pod with netns_fd None. The link is created
under a random temporary name (a name that exists on the host must not collide), then renamed to CNI_IFNAME
inside the pod; an interface of that name already there is an error.

Links only, so a `LinkOps` socket (rtnetlink without the address, route and VF requests of `Rtnl`): a DEL
imports none of that code (~40 kB of bytecode, ~1 ms before its RTM_DELLINK). Only the default route's
lookup of an unset master needs routes: a `RouteOps` socket, imported there.
"""
from __future__ import annotations

import posix

TYPE_CHECKING = False  # annotations only: importing typing costs ~2 ms on every plugin call
if TYPE_CHECKING:
    from typing import Callable, Optional

    from .netlink.routes import RouteOps

from . import errnos, faults, paths
from .confkeys import q
from .errors import INVALID_CONFIG, INVALID_ENV, IO_FAILURE, NOT_AVAILABLE, CniError
from .netlink.errors import LinkNotFound, NetlinkError
from .netlink.links import Link, LinkOps
from .netns import NetnsNotFound, in_netns, in_netns_fd, open_netns, started_in_netns_fd

MIN_MTU = 68  # ETH_MIN_MTU: below it the kernel refuses a macvlan/ipvlan


def default_route_ifname(routes: RouteOps, links: LinkOps) -> Optional[str]:
    """The interface of the first default route of the main table (IPv4 first, then IPv6), as Go."""
    from .netlink.routes import RT_TABLE_MAIN

    for route in routes.routes(table=RT_TABLE_MAIN):
        if not route.is_default:
            continue
        oif = route.oif or next((h.oif for h in route.multipath if h.oif), None)
        if oif:
            try:
                return links.link_get(index=oif).name
            except LinkNotFound:
                continue
    return None


def _lookup_master(name: str, where: str) -> Link:
    with LinkOps() as nl:
        if not name:
            # The default route's interface (ADD, CHECK, STATUS without "master"): the one lookup here that
            # needs routes, on a socket of their own (not Rtnl: its VF requests are 15 kB more to import).
            from .netlink.routes import RouteOps

            with RouteOps() as rt:
                name = default_route_ifname(rt, nl) or ""
            if not name:
                raise CniError(INVALID_CONFIG,
                               f'invalid "master": not set, and no default route interface found {where}')
        try:
            return nl.link_get(name=name)
        except LinkNotFound:
            raise CniError(INVALID_CONFIG, f'invalid "master": link {q(name)} not found {where}') from None


def find_master(netns: str, name: str, in_container: bool) -> Link:
    """The master link by name (empty: the default route's interface), on the host or in the pod."""
    if in_container:
        return in_netns(netns, _lookup_master, name, "in the pod netns (linkInContainer)")
    return _lookup_master(name, "in the host netns")


def master_status(name: str) -> None:
    """STATUS: code 50 when the configured master (or, unset, a default route interface) is missing."""
    try:
        _lookup_master(name, "in the host netns")
    except CniError as e:
        raise CniError(NOT_AVAILABLE, f"master not available: {e.msg}") from None


def check_mtu(mtu: int, master: Link) -> None:
    """0 inherits the master's MTU; anything else must fit within [68, master MTU]."""
    if mtu and not MIN_MTU <= mtu <= master.mtu:
        raise CniError(INVALID_CONFIG, f'invalid "mtu": {mtu}, must be 0 (inherit) or within [{MIN_MTU}, '
                                       f'{master.mtu}] (the MTU of master {q(master.name)})')


# Our temporary link names: "crn" + the creating PID (6 hex digits: pid_max is at most 2^22) + 4 random hex
# digits; before that, "crn" + 8 random hex digits. A DEL sweeps either kind from the pod when it is of the
# plugin's own link kind and (new form) its creator is gone: an ADD killed between create and rename.
TEMP_PREFIX = "crn"
_HEX = frozenset("0123456789abcdef")


def temp_name() -> str:
    return f"{TEMP_PREFIX}{posix.getpid():06x}{posix.urandom(2).hex()}"


def is_orphan_temp(name: str) -> bool:
    """A temp name of ours whose creator is no longer running (an old-form name has no creator: orphan)."""
    tail = name[len(TEMP_PREFIX):]
    if not name.startswith(TEMP_PREFIX) or not tail or not set(tail) <= _HEX:
        return False
    if len(tail) == 8:
        return True
    if len(tail) != 10:
        return False
    pid = int(tail[:6], 16)
    return pid != posix.getpid() and not paths.exists(f"/proc/{pid}")


def _rename(tmp: str, ifname: str) -> Link:
    with LinkOps() as nl:
        index = nl.link_index(tmp)
        try:
            nl.link_set(index, name=ifname)
        except NetlinkError as e:
            try:
                nl.link_del(index)
            except NetlinkError:
                pass
            if e.errno == errnos.EEXIST:
                raise CniError(INVALID_ENV, f"interface {q(ifname)} already exists in the pod netns") from None
            raise CniError(IO_FAILURE, f"failed to rename {q(tmp)} to {q(ifname)}", e.details) from None
        return nl.link_get(index=index)


def _make_here(make: Callable, tmp: str) -> None:
    with LinkOps() as nl:
        make(nl, tmp, None)


def create(netns: str, ifname: str, make: Callable, in_container: bool) -> Link:
    """Create the link (see module doc) and return it as seen in the pod, named ifname."""
    tmp = temp_name()
    fd = open_netns(netns)  # once, for the create (its netns_fd, or its thread) and the rename's thread
    try:
        if in_container:
            in_netns_fd(fd, _make_here, make, tmp, _path=netns)
        else:
            with LinkOps() as nl:
                make(nl, tmp, fd)
        try:
            faults.point("made")  # the kill window: created under the temp name, not yet renamed
            return in_netns_fd(fd, _rename, tmp, ifname, _path=netns)
        except BaseException:
            # _rename removes the link on a netlink refusal; any other failure must not leave the temp-named
            # link in the pod either.
            try:
                in_netns_fd(fd, _delete_temp, tmp, _path=netns)
            except Exception:
                pass
            raise
    finally:
        posix.close(fd)


def _delete_temp(tmp: str) -> None:
    with LinkOps() as nl:
        try:
            nl.link_del(nl.link_index(tmp))
        except LinkNotFound:
            pass


def _delete_index(index: int) -> None:
    with LinkOps() as nl:
        try:
            nl.link_del(index)
        except LinkNotFound:
            pass


def created(netns: str, ifname: str, make: Callable, in_container: bool) -> Created:
    """`with created(...) as link:` create(), and delete the link again if the block raises."""
    return Created(netns, ifname, make, in_container)


class Created:
    """created()'s `with` block. (A class rather than contextlib.contextmanager: contextlib pulls in
    collections and functools, ~5 ms of every plugin call.)"""

    def __init__(self, netns: str, ifname: str, make: Callable, in_container: bool) -> None:
        self.netns, self.ifname, self.make, self.in_container = netns, ifname, make, in_container
        self.index = 0

    def __enter__(self) -> Link:
        link = create(self.netns, self.ifname, self.make, self.in_container)
        self.index = link.index
        try:
            faults.point("created")
        except BaseException:
            self._undo()
            raise
        return link

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is not None:
            self._undo()

    def _undo(self) -> None:
        try:
            in_netns(self.netns, _delete_index, self.index)
        except Exception:
            pass


def _delete_named(ifname: str, kind: str, sending: Optional[Callable[[], None]] = None) -> None:
    with LinkOps() as nl:
        # Only our own kind: after an ADD that failed on a name clash, the runtime's DEL must not
        # remove another plugin's interface of the same name. Orphaned temp links go too (see temp_name).
        for index, name, link_kind in nl.link_heads(kind):
            if link_kind == kind and (name == ifname or is_orphan_temp(name)):
                if sending is not None:
                    sending()
                try:
                    nl.link_del(index)
                except LinkNotFound:
                    pass


def delete(netns: str, ifname: str, kind: str, sending: Optional[Callable[[], None]] = None) -> None:
    """DEL: remove ifname (of this kind) from the pod; a missing netns, path or link is success.
    sending: called right before each delete request goes to the kernel (see delete_beside)."""
    if not netns:
        return
    try:
        in_netns(netns, _delete_named, ifname, kind, sending)
    except NetnsNotFound:
        return


def delete_beside(netns: str, ifname: str, kind: str, work: Optional[Callable[[], None]]) -> None:
    """DEL: delete(), and work() (the IPAM release) on this thread while the kernel deletes the link.

    The kernel holds a link's deleter ~15-20 ms while it unregisters the device (synchronize_net, rcu_barrier):
    the longest wait of a DEL, and no CPU of ours. The netns thread looks the link up and sends the delete; this
    thread, which stays in the node's netns (where the IPAM release must run: cluster-ipam's etcd, an exec'd
    IPAM), waits until the request is about to go (the lookup keeps the GIL to itself: it is the critical path)
    and runs work() during the kernel's wait; without a link to delete, after the lookup. No second thread:
    each costs ~0.2 ms. Errors as in the sequential order (work, then delete): work's error wins, the delete's
    is raised when work succeeded. (Unlike the sequential order, a failing IPAM release no longer keeps the link:
    DEL is retried until it succeeds, and the link is gone either way.)
    """
    if work is None or not netns:
        if work is not None:
            work()
        delete(netns, ifname, kind)
        return
    import _thread

    sending = _thread.allocate_lock()
    sending.acquire()
    told: list[bool] = []

    def about_to_send() -> None:  # the netns thread only: before the delete request, and when it ends
        if not told:
            told.append(True)
            sending.release()

    def deleting() -> None:
        try:
            _delete_named(ifname, kind, about_to_send)
        finally:
            about_to_send()

    try:
        fd = open_netns(netns)
    except NetnsNotFound:  # the pod is gone: nothing to delete, the addresses are still released
        work()
        return
    except BaseException:  # not a netns, no access: released all the same; work's error wins, as in order
        work()
        raise
    try:
        try:
            join = started_in_netns_fd(fd, deleting, _path=netns)
        except RuntimeError:  # no thread to be had ("can't start new thread"): the sequential order
            work()
            in_netns_fd(fd, _delete_named, ifname, kind, None, _path=netns)
            return
        sending.acquire()
        failed: Optional[BaseException] = None
        try:
            work()
        except BaseException as e:
            failed = e
        try:
            join()
        except BaseException as e:
            failed = failed or e
    finally:
        posix.close(fd)
    if failed is not None:
        raise failed


def pod_link(ifname: str) -> Link:
    """ifname as seen in the calling thread's netns (run through in_netns)."""
    with LinkOps() as nl:
        try:
            return nl.link_get(name=ifname)
        except LinkNotFound:
            raise CniError(IO_FAILURE, f"interface {q(ifname)} from prevResult not found in the pod netns") from None


def prev_interface(prev, ifname: str, netns: str):
    """The prevResult entry a CHECK verifies: the interface this plugin put into this sandbox."""
    if prev is None:
        raise CniError(INVALID_CONFIG, "required prevResult missing")
    iface = next((i for i in prev.interfaces if i.name == ifname and i.sandbox == netns), None)
    if iface is None:
        raise CniError(INVALID_CONFIG, f"prevResult has no interface {q(ifname)} in sandbox {q(netns)}")
    return iface


def check_pod_link(ifname: str, kind: str, mode: str, master_index: int, master_label: str, mac: str) -> Link:
    """CHECK of a child link in the calling thread's netns: its kind, mode (ipvlan: "mode flag"), master, MAC."""
    link = pod_link(ifname)
    if link.kind != kind:
        raise CniError(IO_FAILURE, f"interface {q(ifname)} is a {link.kind or 'device'} link, not {kind}")
    have = f"{link.mode} {link.flag}" if kind == "ipvlan" else link.mode
    if have != mode:
        raise CniError(IO_FAILURE, f"interface {q(ifname)} has {kind} mode {have}, expected {mode}")
    if link.link != master_index:
        raise CniError(IO_FAILURE, f"interface {q(ifname)} is not a child of master {master_label}")
    if mac and mac.lower() != (link.mac or ""):
        raise CniError(IO_FAILURE, f"interface {q(ifname)} has MAC {link.mac}, prevResult says {mac}")
    return link
