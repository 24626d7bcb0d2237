"""Apply an IPAM result to one interface inside a pod netns, and verify it later (CHECK).

Every function here acts on the netns of the calling thread, so callers run them through
`cni_rdma.netns.in_netns`:

    in_netns(req.netns, ipconfig.configure, req.ifname, result)
    in_netns(req.netns, ipconfig.verify, req.ifname, prev_result)

`configure` is what Go's `ipam.ConfigureIface` does, plus what it leaves out:
  - the addresses of `result.ips` whose `interface` index names `ifname` in `result.interfaces`
    (addresses of other interfaces and without an index are skipped; an index out of range is an
    error), so a multi-interface result can be applied one interface at a time;
  - `arp_notify` / `ndisc_notify` (best effort, so neighbours learn a re-used address at once);
  - IPv6 enabled on `lo` and the interface before the first IPv6 address, and `keep_addr_on_down=1`
    (as Go since containernetworking/plugins#1155: a pod that bounces its link keeps its IPv6 addresses);
  - addresses, then link up (so arp_notify's gratuitous ARP carries them);
  - IPv6 duplicate address detection by the `dad` config key (see `dad_mode`): "optimistic" (default)
    makes the addresses usable at once while DAD still runs, "wait" waits for DAD as Go does (~1-2 s),
    "off" adds them with `nodad`; an address already `dadfailed` is an error in every mode;
  - routes: a route without `gw` takes the first gateway of its family from `result.ips`
    (so `{"dst": "0.0.0.0/0"}` is the default route of that family); routes sharing
    destination, table and metric become one multipath (ECMP) route; mtu, advmss, priority,
    table and scope (CNI 1.1.0) are honoured.

`verify` checks the same things back: the link is up, every address is present with its prefix and
has not failed DAD, every route exists with its gateway (as a plain or a multipath next hop).
"""
from __future__ import annotations

TYPE_CHECKING = False  # annotations only: importing typing costs ~2 ms on every plugin call
if TYPE_CHECKING:
    from typing import Optional

from . import errnos, faults, sysctl
from .confkeys import get_choice, q
from .errors import INVALID_CONFIG, IO_FAILURE, CniError
from .ipaddr import IPAddress, from_packed
from .netlink.addresses import AddrOps
from .netlink.errors import LinkNotFound, NetlinkError
from .netlink.links import Link, LinkOps
from .netlink.routes import RT_TABLE_MAIN, Nexthop, NlRoute, RouteOps
from .netlink.rtmsg import AF_INET, AF_INET6
from .types import IPConfig, Result


class _AddressingSocket(LinkOps, AddrOps, RouteOps):
    """The rtnetlink socket configure and verify use: link, address and route requests. Not `Rtnl`, whose VF
    requests (cni_rdma.netlink.vfs, 15 kB of bytecode) would load on every macvlan/ipvlan ADD and CHECK for
    nothing."""


DAD_TIMEOUT = 10.0  # seconds; Go's SettleAddresses uses the same bound
DAD_KEY = "dad"
DAD_MODES = ("optimistic", "wait", "off")
DAD_DEFAULT = "optimistic"


def dad_mode(raw: dict) -> str:
    """The `dad` key of a plugin config: how ADD treats IPv6 duplicate address detection.

    optimistic (default)  RFC 4429 optimistic DAD: the address is usable (bind, send) the moment ADD
                          returns and DAD still runs. A duplicate found later turns the address
                          `dadfailed`: the kernel stops using it (bind fails with EADDRNOTAVAIL) and
                          the next CHECK fails naming it, so the runtime replaces the pod. While
                          optimistic, the pod never overrides a neighbour's cache entry (no override
                          flag in its advertisements), so the address's rightful holder keeps working.
                          Linux sends no neighbour solicitation from an optimistic (or tentative)
                          address, so the link-local address (EUI-64 of the interface MAC) is added
                          first without DAD: neighbour discovery then works at once instead of
                          after DAD (measured: the first packet otherwise waits ~2 s). A MAC clash
                          on the segment is fatal anyway, so its DAD adds nothing.
                          A kernel without CONFIG_IPV6_OPTIMISTIC_DAD gets "wait".
    wait                  Go's behaviour: ADD waits until DAD settles (about 1-2 s); a duplicate
                          fails the ADD (code 5) and rolls everything back.
    off                   `nodad`: no detection at all; a duplicate is silently shared. Only for
                          addresses unique by construction when even the probe is unwanted.
    """
    return get_choice(raw, DAD_KEY, DAD_MODES, DAD_DEFAULT, "IPv6 DAD mode")


def ips_for(ifname: str, result: Result) -> list[IPConfig]:
    """The IP configs of `result` meant for `ifname` (via their interface index)."""
    out = []
    for ipc in result.ips:
        if ipc.interface is None:
            continue
        idx = ipc.interface
        if idx < 0 or idx >= len(result.interfaces):
            raise CniError(INVALID_CONFIG,
                           f"failed to add IP addr {ipc.address} to {q(ifname)}: invalid interface index {idx}")
        if result.interfaces[idx].name == ifname:
            out.append(ipc)
    return out


def gateways(ips: list[IPConfig]) -> dict[int, IPAddress]:
    """The first gateway of each IP family (4, 6) among ips."""
    gws: dict[int, IPAddress] = {}
    for ipc in ips:
        if ipc.gateway is not None and ipc.gateway.version not in gws:
            gws[ipc.gateway.version] = ipc.gateway
    return gws


def _link(nl: _AddressingSocket, ifname: str):
    try:
        return nl.link_get(name=ifname)
    except LinkNotFound:
        raise CniError(IO_FAILURE, f"interface {q(ifname)} not found in the pod netns") from None


def _enable_ipv6(ifname: str) -> None:
    for dev in ("lo", ifname):
        key = f"net/ipv6/conf/{dev}/disable_ipv6"
        try:
            if sysctl.get(key) == "0":
                continue
        except CniError:
            continue  # no IPv6 sysctl for this device (as Go: warn and carry on; the address add decides)
        try:
            sysctl.set(key, "0")
        except CniError as e:
            raise CniError(e.code, f"failed to enable IPv6 on {q(dev)}", e.details) from None


def _ipv6_link_sysctls(ifname: str, dad: str) -> str:
    """keep_addr_on_down, and the optimistic-DAD switches when asked for; returns the DAD mode in effect."""
    try:
        sysctl.set(f"net/ipv6/conf/{ifname}/keep_addr_on_down", "1")
    except CniError:
        pass  # kernels before 4.6 have no such key (Go ignores the error too)
    if dad == "optimistic":
        try:
            # optimistic_dad lets addresses (the link-local one too) be used while tentative;
            # use_optimistic lets source address selection pick them.
            sysctl.set(f"net/ipv6/conf/{ifname}/optimistic_dad", "1")
            sysctl.set(f"net/ipv6/conf/{ifname}/use_optimistic", "1")
        except CniError:
            return "wait"  # no CONFIG_IPV6_OPTIMISTIC_DAD: the safe fallback is Go's wait
    return dad


def _set_notify(ifname: str) -> None:
    for key in (f"net/ipv4/conf/{ifname}/arp_notify", f"net/ipv6/conf/{ifname}/ndisc_notify"):
        try:
            sysctl.set(key, "1")
        except CniError:
            pass  # best effort, as Go


def planned_routes(ifindex: int, result: Result, ips: list[IPConfig]) -> list[NlRoute]:
    """result.routes as kernel routes on ifindex: family gateway filled in, ECMP groups merged."""
    gws = gateways(ips)
    groups: dict[tuple, list] = {}
    for r in result.routes:
        gw = r.gw if r.gw is not None else gws.get(r.dst.version)
        key = (r.dst, r.table if r.table is not None else RT_TABLE_MAIN, r.priority)
        groups.setdefault(key, []).append((r, gw))
    out = []
    for (dst, table, priority), members in groups.items():
        first = members[0][0]
        hops = []
        for _r, gw in members:
            if gw not in hops:
                hops.append(gw)
        common = dict(dst=dst, table=table, priority=priority or None, mtu=first.mtu or None,
                      advmss=first.advmss or None, scope=first.scope)
        if len(hops) > 1 and None not in hops:
            out.append(NlRoute(multipath=tuple(Nexthop(gateway=g, oif=ifindex) for g in hops), **common))
        else:
            out.append(NlRoute(gateway=hops[0], oif=ifindex, **common))
    return out


def _route_desc(r: NlRoute, ifname: str) -> str:
    via = [str(h.gateway) for h in r.multipath] if r.multipath else ([str(r.gateway)] if r.gateway else [])
    s = str(r.dst) + (f" via {', '.join(via)}" if via else "") + f" dev {ifname}"
    if r.table != RT_TABLE_MAIN:
        s += f" table {r.table}"
    return s


def configure(ifname: str, result: Result, *, notify: bool = True, dad: str = DAD_DEFAULT,
              dad_timeout: float = DAD_TIMEOUT, link: Optional[Link] = None) -> None:
    """Apply result's addresses and routes to ifname (in the calling thread's netns) and bring it up.

    dad: one of DAD_MODES (see `dad_mode`), for the IPv6 addresses.
    link: ifname as its creator read it back (its index and MAC), so it is not looked up again.
    """
    ips = ips_for(ifname, result)
    if notify:
        _set_notify(ifname)
    v6 = any(ipc.address.version == 6 for ipc in ips)
    if v6:
        _enable_ipv6(ifname)
        dad = _ipv6_link_sysctls(ifname, dad)
    with _AddressingSocket() as nl:
        if link is None:
            link = _link(nl, ifname)
        if v6 and dad == "optimistic":
            _link_local_now(nl, link.index, link.mac)
        for ipc in ips:
            six = ipc.address.version == 6
            try:
                nl.addr_add(link.index, ipc.address, optimistic=six and dad == "optimistic", nodad=six and dad == "off")
            except NetlinkError as e:
                raise CniError(IO_FAILURE, f"failed to add IP addr {ipc.address} to {q(ifname)}", e.details) from None
        # Up only once the addresses are there: arp_notify announces them as the link comes up.
        try:
            nl.link_set(link.index, up=True)
        except NetlinkError as e:
            raise CniError(IO_FAILURE, f"failed to set {q(ifname)} up", e.details) from None
        faults.point("addresses")
        if v6:
            if dad == "wait":
                _wait_dad(nl, link.index, ifname, dad_timeout)
            else:
                _no_dadfailed(nl, link.index, ifname)
        for route in planned_routes(link.index, result, ips):
            try:
                nl.route_add(route, append=True)  # beside routes of other interfaces, as Go
            except NetlinkError as e:
                raise CniError(IO_FAILURE, f"failed to add route {_route_desc(route, ifname)}", e.details) from None
        faults.point("routes")


def _wait_dad(nl: _AddressingSocket, index: int, ifname: str, timeout: float) -> None:
    try:
        nl.wait_dad(index, timeout=timeout)
    except NetlinkError as e:
        if e.errno == errnos.EADDRNOTAVAIL:
            raise CniError(IO_FAILURE, f"duplicate address detection failed on {q(ifname)}", e.ext_ack) from None
        # Still tentative after the timeout (e.g. no carrier yet): not an error, as in Go.


def eui64_link_local(mac: str | None) -> str | None:
    """fe80::/64 with the modified EUI-64 of an Ethernet MAC (what the kernel's default addr_gen_mode
    makes, so it does not add a second one); None for other hardware addresses (IPoIB)."""
    parts = (mac or "").split(":")
    if len(parts) != 6:
        return None
    b = bytes.fromhex("".join(parts))
    eui = bytes([b[0] ^ 0x02]) + b[1:3] + b"\xff\xfe" + b[3:]
    return str(from_packed(b"\xfe\x80" + bytes(6) + eui)) + "/64"


def _link_local_now(nl: _AddressingSocket, index: int, mac: str | None) -> None:
    """The link-local address, usable before link up (nodad): the source of neighbour solicitations
    while the IPAM addresses are still optimistic (see dad_mode)."""
    ll = eui64_link_local(mac)
    if ll is None:
        return
    try:
        nl.addr_add(index, ll, nodad=True)
    except NetlinkError as e:
        if e.errno != errnos.EEXIST:
            raise CniError(IO_FAILURE, f"failed to add link-local address {ll}", e.details) from None


def _no_dadfailed(nl: _AddressingSocket, index: int, ifname: str) -> None:
    """One look without waiting: a duplicate that already answered (a fast link) fails the ADD."""
    failed = [str(a.address) for a in nl.addrs(index=index, family=AF_INET6) if a.dadfailed]
    if failed:
        raise CniError(IO_FAILURE, f"duplicate address detection failed on {q(ifname)}",
                       f"{', '.join(failed)} is a duplicate")


def verify(ifname: str, result: Result, link: Optional[Link] = None) -> None:
    """CHECK: ifname is up and carries result's addresses and routes (in the calling thread's netns).
    link: ifname as the caller just read it, so it is not looked up again."""
    ips = ips_for(ifname, result)
    with _AddressingSocket() as nl:
        if link is None:
            link = _link(nl, ifname)
        if not link.up:
            raise CniError(IO_FAILURE, f"interface {q(ifname)} is down")
        have = {a.address: a for a in nl.addrs(index=link.index)}
        for ipc in ips:
            if ipc.address not in have:
                raise CniError(IO_FAILURE, f"address {ipc.address} missing on interface {q(ifname)}")
            if have[ipc.address].dadfailed:
                raise CniError(IO_FAILURE, f"address {ipc.address} on interface {q(ifname)} failed duplicate "
                                           "address detection: another host holds it")
        families = {r.dst.version for r in result.routes}
        present = {v: nl.routes(family=AF_INET if v == 4 else AF_INET6) for v in families}
        for want in planned_routes(link.index, result, ips):
            if not any(_route_matches(got, want) for got in present[want.dst.version]):
                raise CniError(IO_FAILURE, f"route {_route_desc(want, ifname)} missing")


def _route_matches(got: NlRoute, want: NlRoute) -> bool:
    if got.dst != want.dst or got.table != want.table:
        return False
    if want.priority is not None and got.priority != want.priority:
        return False
    # (gateway, interface) pairs: a plain route is a one-hop path; each wanted hop must be present
    want_hops = {(h.gateway, h.oif) for h in want.multipath} if want.multipath else {(want.gateway, want.oif)}
    got_hops = {(h.gateway, h.oif) for h in got.multipath} if got.multipath else {(got.gateway, got.oif)}
    return want_hops <= got_hops

