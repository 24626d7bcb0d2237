"""Hypothesis over cluster-ipam's config keys: any value is a result or a CNI error (code 7 naming an ipam key,
or 11 from the pool), never code 999 or a traceback. Runs the skeleton in-process (a process per example is
too slow for hypothesis) against the tier's real etcd cluster."""
from __future__ import annotations

import io
import json
import uuid

from hypothesis import HealthCheck, given, settings, strategies as st

from cni_rdma import skel
from ipam.cluster_ipam import cluster_ipam

KEYS = ["pool", "nodeName", "blockSize", "blockSizeV6", "strictAffinity", "exclude", "ranges", "routes", "subnet",
        "etcd.endpoints", "etcd.prefix", "etcd.timeout", "etcd.caFile", "etcd.certFile", "etcd.keyFile",
        "etcd.username", "etcd.passwordFile", "etcd.configFile", "etcd.unknown", "etcd"]
scalars = st.one_of(st.none(), st.booleans(), st.integers(-2**40, 2**40), st.floats(allow_nan=False),
                    st.text(max_size=30), st.sampled_from(["10.0.0.0/8", "fd00::/120", "/etc/hostname", "/dev/null",
                                                           "http://127.0.0.1:9", "https://[::1]:2379", "", "/"]))
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                       st.dictionaries(st.text(max_size=8), inner, max_size=3)),
                      max_leaves=6)


def _call(conf: dict, command: str = "ADD") -> dict | None:
    env = {"CNI_COMMAND": command, "CNI_CONTAINERID": "hyp", "CNI_NETNS": "/var/run/netns/none",
           "CNI_IFNAME": "eth0", "CNI_PATH": "/nonexistent"}
    out, err = io.StringIO(), io.StringIO()
    rc = skel.run(cluster_ipam, env, io.BytesIO(json.dumps(conf).encode()), out, err)
    assert "Traceback" not in err.getvalue()
    return None if rc == 0 else json.loads(out.getvalue())


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(changes=st.dictionaries(st.sampled_from(KEYS), values, min_size=1, max_size=3))
def test_any_config_value_is_a_result_or_a_named_error(etcd_cluster, changes):
    ipam = {"type": "cluster-ipam", "ranges": [[{"subnet": "10.95.0.0/24"}]], "nodeName": "hyp",
            "etcd": {"endpoints": etcd_cluster.endpoints, "timeout": 1, "prefix": f"/hyp-{uuid.uuid4().hex[:8]}"}}
    for key, value in changes.items():
        if key.startswith("etcd."):
            if isinstance(ipam.get("etcd"), dict):
                ipam["etcd"][key[5:]] = value
        else:
            ipam[key] = value
    conf = {"cniVersion": "1.1.0", "name": "hyp-net", "type": "cluster-ipam", "ipam": ipam}
    for command in ("ADD", "DEL"):
        err = _call(conf, command)
        if err is None:
            continue
        assert err["code"] in (7, 11), err
        if err["code"] == 7:
            assert '"ipam' in err["msg"] or "requested IP" in err["msg"] or "cniVersion" in err["msg"], err
