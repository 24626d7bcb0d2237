"""Host tier for RDMA netlink: this host kernel has no RDMA core, so the socket must fail cleanly.

Everything with a real RDMA device (rxe) is proven in the VM tier (tests/vm/test_netlink_vm.py).
"""
import os

import pytest

from cni_rdma.netlink.errors import NetlinkError
from cni_rdma.netlink.rdma import Rdma, RdmaUnavailable


@pytest.mark.skipif(os.path.exists("/sys/class/infiniband"), reason="this kernel has RDMA")
def test_no_rdma_core_is_a_clean_error():
    with pytest.raises(RdmaUnavailable) as ei:
        Rdma()
    assert isinstance(ei.value, NetlinkError) and ei.value.errno
    assert "RDMA" in str(ei.value)
