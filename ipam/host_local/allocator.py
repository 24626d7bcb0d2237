"""Round-robin allocation over one range set, in the order Go's RangeIter walks it.

Start right after `last_reserved_ip.<N>` when that address lies in the set (else at the first range's
start), run to the end of its range, continue through the following ranges, wrap around, and stop after
coming back to where it began; gateway, subnet address and IPv4 broadcast are never offered. Each
candidate costs one exclusive create attempt (no directory listing, no file reads), as in Go.
"""
from __future__ import annotations

TYPE_CHECKING = False  # annotations only: importing typing costs ~2 ms on every plugin call
if TYPE_CHECKING:
    from typing import Iterator, Optional

from cni_rdma.errors import INVALID_CONFIG, TRY_AGAIN_LATER, CniError

from .config import Range, RangeSet, Requested, rangeset_for, rangeset_str
from .store import ReservationStore


def candidates(rs: RangeSet, last: Optional[tuple[int, int]]) -> Iterator[tuple[Range, int]]:
    first_idx: int = 0
    first_val: Optional[int] = rs[0].start
    if last is not None:
        for i, r in enumerate(rs):
            if r.contains(*last):
                first_idx, first_val = (i, last[1] + 1) if last[1] < r.end else ((i + 1) % len(rs), None)
                break
    order = [(first_idx + k) % len(rs) for k in range(len(rs))]
    for k, i in enumerate(order):
        r = rs[i]
        lo = first_val if (k == 0 and first_val is not None) else r.start
        for value in range(lo, r.end + 1):
            if r.usable(value):
                yield r, value
    # The wrap-around: the head of the first range, up to where the walk began.
    r = rs[first_idx]
    if first_val is not None:
        for value in range(r.start, first_val):
            if r.usable(value):
                yield r, value


def allocate(store: ReservationStore, rs: RangeSet, idx: int, cid: str, ifname: str,
             requested: Optional[Requested]) -> tuple[Range, int]:
    """Reserve one address of range set `idx` for (cid, ifname): the requested one, or the next free one."""
    if requested is not None:
        r = rangeset_for(rs, requested.version, requested.value)
        assert r is not None  # the caller picked it because the set contains it
        if requested.value == r.gateway:
            raise CniError(INVALID_CONFIG, f'invalid "{requested.source}": requested ip {requested.text} '
                           f"is subnet's gateway")
        if not r.usable(requested.value):
            raise CniError(INVALID_CONFIG, f'invalid "{requested.source}": requested ip {requested.text} '
                           "is the subnet or broadcast address")
        if not store.reserve(requested.text, cid, ifname):
            holder = store.holder(requested.text)
            who = f" (held by {holder[0]}/{holder[1] or '-'})" if holder else ""
            raise CniError(TRY_AGAIN_LATER, f"failed to allocate for range {idx}: requested IP address "
                           f"{requested.text} is not available in range set {rangeset_str(rs)}{who}")
        store.set_last_reserved(idx, requested.text)
        return r, requested.value
    for r, value in candidates(rs, store.last_reserved(idx)):
        ip = r.address(value)
        if store.reserve(ip, cid, ifname):
            store.set_last_reserved(idx, ip)
            return r, value
    raise CniError(TRY_AGAIN_LATER, f"failed to allocate for range {idx}: no IP addresses available in range set: "
                   f"{rangeset_str(rs)}")
