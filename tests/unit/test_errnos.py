"""cni_rdma.errnos: the plugins' errno numbers without importing errno (~0.2 ms of every call) are errno's."""
import errno

from cni_rdma import errnos


def test_every_number_is_the_errno_modules():
    names = [n for n in vars(errnos) if n.startswith("E") and n.isupper()]
    assert len(names) >= 16
    for name in names:
        assert getattr(errnos, name) == getattr(errno, name), name


def test_errorcode_names_a_number_or_gives_it_back():
    assert errnos.errorcode(errno.EPERM) == "EPERM"
    assert errnos.errorcode(errno.ENODEV) == "ENODEV"
    assert errnos.errorcode(99999) == 99999
