"""Hostile strings in every string-valued key and CNI_* variable of every plugin, run as real processes.

One example = one plugin, one to three of its keys and CNI_* variables each set to a hostile string: newlines,
NUL, lone surrogates, non-UTF-8 bytes (raw in stdin and env), shell and path tricks aimed at a private sandbox,
very long values.
It runs ADD and DEL with the hostile input, then a clean DEL, and asserts:
- every answer is a result or one CNI error JSON line (int code, str msg), exit 0/1, no traceback, and every
  stderr line is one escaped log line;
- nothing was written outside the dataDir / logFile the config names (the sandbox is listed before and after;
  relative paths land in the plugin's private cwd, which is listed too);
- no link is left in the pod or on the node, no reservation in the dataDir, and the clean DEL returns 0.
Example counts are moderate on purpose (2 shared cores; CI well under 90 min): EXAMPLES per plugin, override
with CNI_RDMA_SECURITY_EXAMPLES for a deeper run.
"""
from __future__ import annotations

import copy
import json
import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests import topology
from tests.security.conftest import TIMESTAMP, link_names

EXAMPLES = int(os.environ.get("CNI_RDMA_SECURITY_EXAMPLES", "15"))
ENV_KEYS = ("CNI_CONTAINERID", "CNI_IFNAME", "CNI_NETNS", "CNI_ARGS", "CNI_PATH", "CNI_NETNS_OVERRIDE")
S = "{sandbox}"  # replaced by the example's sandbox directory
SPECIAL = [
    "net1\n", "a\nb", "x\r\ny", "\x00", "a\x00b", "\udcff", "\ud800x", "\u2028", "\x1b[2J", "\x7f", "",
    " ", ".", "..", "-", "é" * 16, "💥" * 4, "A" * 4096, "$(touch {sandbox}/pwned)", "`touch {sandbox}/pwned`",
    "x; touch {sandbox}/pwned", "../../../../../../../../{sandbox}/dotdot", "{sandbox}/abs\nnl", "{sandbox}/fifo",
    "{sandbox}/link", "{sandbox}/dir", "/dev/zero", "/proc/self/ns/net", "/proc/self/ns/mnt", "relative/path",
    "IgnoreUnknown=1;K8S_POD_NAME=\n", "a=b=c;;", "0000:af:00.2\n", "aa:bb:cc:dd:ee:ff\n", "10.99.0.0/24\n",
    "10.99.0.0/24\x00", "fe80::1%\nx", "nameserver 1.1.1.1", "true", "1",
]
hostile = st.one_of(
    st.sampled_from(SPECIAL),
    st.text(alphabet=st.characters(blacklist_categories=()), max_size=24),  # includes lone surrogates
    st.binary(min_size=1, max_size=24).map(lambda b: b.decode("utf-8", "surrogateescape")),  # non-UTF-8 bytes
    st.integers(256, 70000).map(lambda n: "x" * n),
)


def _ipam(data_dir: str) -> dict:
    return {"type": "host-local", "dataDir": data_dir, "subnet": "10.98.0.0/24", "gateway": "10.98.0.1",
            "routes": [{"dst": "0.0.0.0/0"}]}


def _base(plugin: str, sandbox: str) -> dict:
    data = f"{sandbox}/data"
    common = {"cniVersion": "1.0.0", "name": "fuzznet", "type": plugin}
    if plugin == "host-local":
        return {**common, "ipam": _ipam(data)}
    if plugin == "cluster-ipam":  # etcd refused at once (port 1): every call ends in config checks or code 11
        return {**common, "ipam": {"type": "cluster-ipam", "subnet": "10.97.0.0/24", "pool": "fuzzpool",
                                   "nodeName": "fuzznode", "resolvConf": f"{sandbox}/resolv.conf",
                                   "etcd": {"endpoints": ["http://127.0.0.1:1"], "prefix": "/fuzz", "timeout": 2}}}
    if plugin in ("macvlan", "ipvlan"):
        return {**common, "master": "eth0", "mode": "bridge" if plugin == "macvlan" else "l2", "ipam": _ipam(data)}
    if plugin == "sriov":
        return {**common, "deviceID": "0000:af:00.2", "vlan": 0, "ipam": _ipam(data)}
    return {**common, "deviceID": "0000:af:00.2", "dataDir": data,  # rdma, chained after sriov
            "prevResult": {"cniVersion": "1.0.0", "interfaces": [{"name": "net1", "mac": "aa:bb:cc:dd:ee:ff",
                                                                 "sandbox": "/var/run/netns/x"}], "ips": []}}


# Keys a NAD may carry beyond the base config, per plugin (dotted paths; digits index lists).
EXTRA = {
    "cluster-ipam": ["ipam.etcd.caFile", "ipam.etcd.certFile", "ipam.etcd.keyFile", "ipam.etcd.username",
                     "ipam.etcd.passwordFile", "ipam.etcd.endpoints.0", "ipam.exclude.0", "args.cni.ips.0"],
    "host-local": ["ipam.rangeStart", "ipam.rangeEnd", "ipam.resolvConf", "ipam.routes.0.gw",
                   "ipam.ranges.0.0.subnet", "args.cni.ips.0", "runtimeConfig.ips.0"],
    "macvlan": ["mac", "runtimeConfig.mac", "ipam.resolvConf", "ipam.rangeStart", "args.cni.ips.0"],
    "ipvlan": ["ipam.resolvConf", "linkInContainer"],
    "sriov": ["mac", "spoofchk", "trust", "link_state", "pciBusID", "runtimeConfig.mac", "ipam.resolvConf"],
    "rdma": ["args.cni.debug", "prevResult.interfaces.0.mac", "prevResult.interfaces.0.name",
             "prevResult.interfaces.0.sandbox", "runtimeConfig.deviceID"],
}
COMMON_EXTRA = ["logFile", "logLevel", "cniVersion", "name", "type", "ipam.type"]


def _string_paths(obj, prefix=()) -> list[tuple]:
    if isinstance(obj, dict):
        return [p for k, v in obj.items() for p in _string_paths(v, prefix + (k,))]
    if isinstance(obj, list):
        return [p for i, v in enumerate(obj) for p in _string_paths(v, prefix + (i,))]
    return [prefix] if isinstance(obj, str) else []


def _set(conf: dict, path: tuple, value) -> None:
    node = conf
    for key, nxt in zip(path, path[1:]):
        if isinstance(node, list):
            while len(node) <= key:
                node.append({} if not isinstance(nxt, int) else [])
            node = node[key]
        else:
            if not isinstance(node.get(key), (dict, list)):
                node[key] = [] if isinstance(nxt, int) else {}
            node = node[key]
    last = path[-1]
    if isinstance(node, list):
        while len(node) <= last:
            node.append(None)
    node[last] = value


def _keys(plugin: str) -> list[tuple]:
    base = _base(plugin, "/s")
    dotted = [tuple(int(p) if p.isdigit() else p for p in k.split(".")) for k in EXTRA[plugin] + COMMON_EXTRA]
    return sorted(set(_string_paths(base)) | set(dotted), key=str)


def _encode(text: str) -> bytes:
    """The bytes a hostile str stands for: lone surrogates from undecodable bytes go back to those bytes."""
    try:
        return text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogatepass")


def _listing(root: str) -> set[str]:
    out = set()
    for d, dirs, files in os.walk(root):
        out.update(os.path.join(d, n) for n in dirs + files)
    return out


def _check_answer(r: topology.PluginRun, command: str) -> None:
    assert r.code in (0, 1), (r.code, r.stdout, r.stderr)
    assert "Traceback" not in r.stdout + r.stderr, r.stdout + r.stderr
    for line in r.stderr.splitlines():
        assert TIMESTAMP.match(line), f"stderr line is not one escaped log line: {line!r}"
    if r.code == 1:
        assert r.stdout.count("\n") == 1, r.stdout
        err = json.loads(r.stdout)
        assert isinstance(err["code"], int) and isinstance(err["msg"], str), err
    elif command == "ADD":
        assert isinstance(json.loads(r.stdout), dict)
    else:
        assert r.stdout == "", r.stdout


def _reservations(data_dir: str) -> list[str]:
    """Reservation files of every network under data_dir (a hostile name reserves under its own)."""
    out = []
    for d, _, files in os.walk(data_dir):
        if "/.cni-rdma" in d or d == data_dir:
            continue
        out += [os.path.join(d, n) for n in files
                if n != "lock" and not n.endswith(".lock") and not n.startswith("last_reserved_ip.")]
    return out


@pytest.fixture(scope="module")
def node():
    n = topology.make_node()
    yield n
    topology.netns_del(n.name)


@pytest.fixture(scope="module")
def pod():
    p = topology.make_pod()
    yield p
    topology.netns_del(p.name)


@pytest.mark.parametrize("plugin", ["host-local", "cluster-ipam", "macvlan", "ipvlan", "sriov", "rdma"])
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_hostile_strings_everywhere(plugin, node, pod, tmp_path_factory, data):
    sandbox = str(tmp_path_factory.mktemp("fuzz"))
    os.mkfifo(f"{sandbox}/fifo")
    os.mkdir(f"{sandbox}/dir")
    os.mkdir(f"{sandbox}/cwd")
    os.symlink("/etc/hostname", f"{sandbox}/link")
    with open(f"{sandbox}/resolv.conf", "w") as f:
        f.write("nameserver 10.97.0.53\n")
    base = _base(plugin, sandbox)
    fields = [("env", k) for k in ENV_KEYS] + [("key", k) for k in _keys(plugin)]
    chosen = data.draw(st.lists(st.sampled_from(fields), min_size=1, max_size=3, unique=True), label="fields")
    conf, env = copy.deepcopy(base), {}
    allowed: list[str] = []
    for where, field in chosen:
        value = data.draw(hostile, label=f"{where} {field}").replace(S, sandbox)
        if where == "env":
            env[field] = _encode(value.replace("\x00", ""))  # the environment cannot carry NUL
            continue
        _set(conf, field, value)
        if field[-1] in ("dataDir", "logFile") and "\x00" not in value:
            # A relative dataDir lands in the plugin's cwd (a relative logFile is refused), every missing parent
            # created on the way (Go's host-local MkdirAll does the same): "0/0" makes cwd/0 too.
            target = os.path.normpath(os.path.join(f"{sandbox}/cwd", value))
            allowed.append(target)
            while not os.path.isabs(value) and os.path.dirname(target) not in (f"{sandbox}/cwd", sandbox, "/"):
                target = os.path.dirname(target)
                allowed.append(target)
    raw = data.draw(st.booleans(), label="raw bytes in stdin")
    stdin = _encode(json.dumps(conf, ensure_ascii=False)) if raw else json.dumps(conf).encode()
    before = _listing(sandbox)
    links = (link_names(pod.name), link_names(node.name))
    call = dict(netns=pod.path, ifname="net1", container_id="fuzz1", node=node, cwd=f"{sandbox}/cwd", timeout=60,
                path=str(topology.bin_dir()))
    for command in ("ADD", "DEL"):
        _check_answer(topology.run_plugin(plugin, command, stdin, extra_env=env, **call), command)
    clean = topology.run_plugin(plugin, "DEL", base, **call)
    if plugin == "cluster-ipam":  # its store is down: the clean DEL must say so (code 11), not succeed
        assert clean.code == 1 and json.loads(clean.stdout)["code"] == 11, clean.stdout + clean.stderr
    else:
        assert clean.code == 0, clean.stdout + clean.stderr
    allowed.append(f"{sandbox}/data")
    new = {p for p in _listing(sandbox) - before if not any(p == a or p.startswith(a.rstrip("/") + "/")
                                                            for a in allowed)}
    assert not new, f"written outside dataDir/logFile: {sorted(new)[:5]}"
    assert (link_names(pod.name), link_names(node.name)) == links
    assert _reservations(f"{sandbox}/data") == []
