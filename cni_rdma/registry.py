"""Plugin type name (argv[0] basename, ipam.type) -> module implementing it.

Modules are imported lazily so each process loads only the plugin it runs.
"""
PLUGINS: dict[str, str] = {
    "macvlan": "plugins.macvlan.macvlan",
    "ipvlan": "plugins.ipvlan.ipvlan",
    "sriov": "plugins.sriov.sriov",
    "rdma": "plugins.rdma.rdma",
    "host-local": "ipam.host_local.host_local",
    "cluster-ipam": "ipam.cluster_ipam.cluster_ipam",
}
