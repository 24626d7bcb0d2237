"""Plugin type name (argv[0] basename, ipam.type) -> module implementing it, and its about line.

Modules are imported lazily so each process loads only the plugin it runs. The about line (what a plugin
prints when run with no CNI_COMMAND) lives here so that it is answered before the plugin is imported
(cni_rdma/early.py); each plugin module's ABOUT is the same string (tests/unit/test_startup.py).
"""
PLUGINS: dict[str, str] = {
    "macvlan": "plugins.macvlan.macvlan",
    "ipvlan": "plugins.ipvlan.ipvlan",
    "sriov": "plugins.sriov.sriov",
    "rdma": "plugins.rdma.rdma",
    "host-local": "ipam.host_local.host_local",
    "cluster-ipam": "ipam.cluster_ipam.cluster_ipam",
}
ABOUT: dict[str, str] = {
    "macvlan": "cni-rdma macvlan",
    "ipvlan": "cni-rdma ipvlan",
    "sriov": "cni-rdma sriov",
    "rdma": "cni-rdma rdma: moves a VF's RDMA device into the pod netns (RDMA exclusive netns mode)",
    "host-local": "cni-rdma host-local IPAM",
    "cluster-ipam": "cni-rdma cluster-ipam (etcd v3)",
}


def load(module_name: str):
    """The module named, imported: what importlib.import_module does, without importing importlib (and the
    warnings module it pulls), ~1 ms of every plugin call."""
    import sys

    from .bundled import preload

    preload(module_name)  # frozen: the module's imports run from the bundle's modules file, in one go
    __import__(module_name)
    return sys.modules[module_name]
