"""The C helpers of cni_rdma/_native.c the state stores use, or their stdlib equivalents where it was never built.

flock(2) for every lock of ours (state records, host-local's store, sriov-cni's VF lock) and zlib's CRC-32 for
the names of state files (host-local's bucket files, cluster-ipam's first block): fcntl and zlib are extension
modules, a dlopen each on every call (~0.2 and ~0.45 ms); cni_rdma._native is built into the bundle's
executable (and in place by `make dev`). A module of its own so that host-local's store takes them without
importing cni_rdma.state (17 kB of code it does not run).
"""
try:
    from ._native import crc32 as crc32  # "as": re-exported
    from ._native import flock as flock
except ImportError:  # a plain wheel install, where _native was never built
    from fcntl import flock as flock
    from zlib import crc32 as crc32
LOCK_EX, LOCK_NB = 2, 4  # <sys/file.h>: fcntl.LOCK_EX, fcntl.LOCK_NB without importing fcntl
