"""`cni-rdma doctor`: this node's readiness for RDMA pods, each check ok / warn / fail with the fix.

The checks follow the manual steps of the deployment documents: the RDMA netns mode (runtime and the
module option that survives a reboot), RDMA devices with port state and netdev, SR-IOV PF/VF inventory,
kernel modules, /dev/infiniband, our plugins in the CNI bin dir, the CNI conf dir and Multus, IPAM data
dirs, etcd for cluster-ipam networks. Every path is injectable so tests can break one thing at a time.
"""
from __future__ import annotations

import os
import socket
from typing import Any, Optional

from cni_rdma.registry import PLUGINS
from cni_rdma.sysfs import Sysfs

from . import inventory
from .common import CliError, list_dir, one_line, read_file, read_json

OK, WARN, FAIL = "ok", "warn", "fail"
# ib_umad: the umad/issm nodes the RDMA device plugins mount ('RDMA device "issm" not found' without it)
CORE_MODULES = ("ib_core", "ib_uverbs", "rdma_ucm", "ib_umad")
# /dev/infiniband node classes per RDMA device, as the device plugins (rdmamap) look them up
CHAR_CLASSES = (("infiniband_verbs", "uverbs", "ib_uverbs"), ("infiniband_mad", "umad", "ib_umad"),
                ("infiniband_mad", "issm", "ib_umad"))
MELLANOX = "15b3"
SHARED_TYPES = frozenset({"macvlan", "ipvlan"})
EXCLUSIVE_TYPES = frozenset({"sriov", "rdma", "ib-sriov"})
CONF_EXTS = (".conf", ".conflist", ".json")
MODPROBE_DIRS = ("lib/modprobe.d", "usr/lib/modprobe.d", "run/modprobe.d", "etc/modprobe.d")  # later wins
ETCD_CONFIG = "/etc/cni/net.d/cni-rdma-etcd.json"  # cluster-ipam's default when a config has no etcd endpoints


class Paths:
    """Where doctor looks; defaults are a node's, tests point them elsewhere."""

    __slots__ = ("sysfs", "bin_dir", "conf_dir", "ipam_dir", "state_dir", "dev_dir", "host_root")

    def __init__(self, sysfs: Sysfs, bin_dir: str, conf_dir: str, ipam_dir: str, state_dir: str, dev_dir: str,
                 host_root: str = "/"):
        self.sysfs, self.bin_dir, self.conf_dir = sysfs, bin_dir, conf_dir
        self.ipam_dir, self.state_dir, self.dev_dir = ipam_dir, state_dir, dev_dir
        self.host_root = host_root  # where /proc/cmdline and the modprobe.d dirs are read


def check(name: str, status: str, summary: str, fix: Optional[str] = None, **details: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"check": name, "status": status, "summary": summary, "fix": fix}
    if details:
        out["details"] = details
    return out


# ------------------------------------------------------------------------------ CNI conf dir
def scan_confs(conf_dir: str) -> tuple[list[dict[str, Any]], list[str]]:
    """(networks, problems) of every .conf/.conflist/.json in the conf dir."""
    nets, problems = [], []
    for fname in list_dir(conf_dir):
        if not fname.endswith(CONF_EXTS):
            continue
        path = os.path.join(conf_dir, fname)
        try:
            raw = read_json(path)
        except CliError as e:
            problems.append(e.message)
            continue
        if not isinstance(raw, dict):
            problems.append(f"{one_line(path)}: not a JSON object")
            continue
        plugins = raw.get("plugins") if fname.endswith(".conflist") else [raw]
        if not isinstance(plugins, list):
            problems.append(f"{one_line(path)}: \"plugins\" is not a list")
            continue
        plugins = [p for p in plugins if isinstance(p, dict)]
        ipams: list[dict[str, Any]] = [p["ipam"] for p in plugins if isinstance(p.get("ipam"), dict)]
        nets.append({"file": path, "name": raw.get("name"), "types": [str(p.get("type")) for p in plugins],
                     "ipam": [str(i.get("type")) for i in ipams], "ipam_conf": ipams})
    return nets, problems


def wanted_mode(nets: list[dict[str, Any]]) -> tuple[Optional[str], str]:
    """The RDMA netns mode the local network configs need, and why."""
    shared = sorted({n["name"] for n in nets if SHARED_TYPES & set(n["types"])} - {None})
    exclusive = sorted({n["name"] for n in nets if EXCLUSIVE_TYPES & set(n["types"])} - {None})
    if exclusive and not shared:
        return "exclusive", f"networks {', '.join(map(str, exclusive))} use sriov/rdma"
    if shared and not exclusive:
        return "shared", f"networks {', '.join(map(str, shared))} use macvlan/ipvlan"
    return None, "no local network config decides it" if not (shared or exclusive) else "configs need both modes"


# -------------------------------------------------------------------------------------- checks
def check_modules(p: Paths, inv: dict[str, Any]) -> dict[str, Any]:
    loaded = {m: os.path.isdir(p.sysfs.path("module", m)) for m in CORE_MODULES + ("mlx5_core", "mlx5_ib")}
    missing = [m for m in CORE_MODULES if not loaded[m]]
    mellanox = any(f.get("vendor_id") == MELLANOX for f in inv["pci"])
    if mellanox and not loaded["mlx5_ib"]:
        missing.append("mlx5_ib")
    if missing:
        return check("modules", FAIL, f"kernel modules not loaded: {', '.join(missing)}",
                     f"modprobe -a {' '.join(missing)} && printf '%s\\n' {' '.join(missing)} "
                     f">> /etc/modules-load.d/rdma.conf", loaded=loaded)
    extra = "mlx5_ib loaded" if loaded["mlx5_ib"] else "mlx5_ib not needed (no Mellanox function)"
    return check("modules", OK, f"{', '.join(CORE_MODULES)} loaded; {extra}", loaded=loaded)


def check_netns_mode(inv: dict[str, Any], want: Optional[str], why: str) -> dict[str, Any]:
    rdma = inv["rdma"]
    if rdma["error"]:
        return check("netns-mode", FAIL, f"RDMA netlink unavailable: {rdma['error']}", "modprobe ib_core")
    mode = rdma["netns_mode"]
    if mode is None:
        return check("netns-mode", WARN, "kernel does not report the RDMA netns mode (before 5.2?)",
                     "upgrade the kernel (RDMA netns support needs 5.2+)")
    if want and mode != want:
        return check("netns-mode", FAIL, f"RDMA netns mode is {mode}; {want} needed ({why})",
                     f"rdma system set netns {want}   # only while no netns but the initial one exists: "
                     "before kubelet starts pods", mode=mode, want=want)
    return check("netns-mode", OK, f"RDMA netns mode is {mode}" + (f" ({why})" if want else f"; {why}"),
                 mode=mode, want=want)


def _netns_value(v: str) -> Optional[str]:
    v = v.strip().strip("\"'").lower()
    if v in ("0", "n", "no", "false", "off"):
        return "exclusive"
    if v in ("1", "y", "yes", "true", "on"):
        return "shared"
    return None


def boot_netns_mode(p: Paths) -> tuple[str, str]:
    """(mode, where it comes from) the RDMA subsystem starts in at the next boot or ib_core reload.

    /sys/module/ib_core/parameters/netns_mode is no witness: `rdma system set netns` rewrites it. The kernel
    command line wins over modprobe.d options (modprobe appends it last); the kernel's default is shared."""
    cmdline = p.sysfs.read(os.path.join(p.host_root, "proc", "cmdline")) or ""
    found = None
    for word in cmdline.split():
        if word.startswith("ib_core.netns_mode="):
            found = (_netns_value(word.split("=", 1)[1]), "kernel command line ib_core.netns_mode")
    if found and found[0]:
        return found[0], found[1]
    mode, source = "shared", "kernel default"
    for d in MODPROBE_DIRS:
        base = os.path.join(p.host_root, d)
        for fname in list_dir(base):
            if not fname.endswith(".conf"):
                continue
            try:
                text = read_file(os.path.join(base, fname), 1 << 20).decode(errors="replace")
            except CliError:
                continue
            for line in text.splitlines():
                words = line.split("#", 1)[0].split()
                if len(words) >= 3 and words[0] == "options" and words[1] in ("ib_core", "ib-core"):
                    for w in words[2:]:
                        if w.startswith("netns_mode=") and _netns_value(w.split("=", 1)[1]):
                            mode, source = _netns_value(w.split("=", 1)[1]) or mode, os.path.join(d, fname)
    return mode, source


def check_netns_mode_boot(p: Paths, inv: dict[str, Any], want: Optional[str]) -> dict[str, Any]:
    boot, source = boot_netns_mode(p)
    target = want or inv["rdma"]["netns_mode"]
    if target and boot != target:
        fix_val = "1" if target == "shared" else "0"
        return check("netns-mode-boot", WARN, f"boots in {boot} mode ({source}); {target} wanted: a reboot or "
                     "ib_core reload brings the wrong mode back",
                     f"echo 'options ib_core netns_mode={fix_val}' > /etc/modprobe.d/ib_core-netns.conf && "
                     "update-initramfs -u" + ("   # and drop ib_core.netns_mode from the kernel command line"
                                              if source.startswith("kernel command") else ""),
                     boot=boot, source=source, want=target)
    return check("netns-mode-boot", OK, f"boots in {boot} mode ({source})", boot=boot, source=source)


def check_rdma_devices(inv: dict[str, Any], want: Optional[str]) -> dict[str, Any]:
    rdma = inv["rdma"]
    if rdma["error"]:
        return check("rdma-devices", FAIL, "no RDMA subsystem", "modprobe ib_core ib_uverbs rdma_ucm")
    devs = rdma["devices"]
    if not devs:
        status = FAIL if want else WARN
        return check("rdma-devices", status, "no RDMA device in this netns",
                     "load the NIC's RDMA driver (modprobe mlx5_ib), or for soft RoCE: "
                     "rdma link add rxe0 type rxe netdev <uplink>")
    problems, fixes = [], []
    for d in devs:
        for port in d["ports"]:
            where = f"{d['name']}/{port['port']}"
            if port["state"] != "active":
                problems.append(f"{where} is {port['state']}")
                fixes.append(f"ip link set {port['netdev']} up" if port["netdev"] else f"check the cable of {where}")
            if not port["netdev"]:
                problems.append(f"{where} has no netdev in this netns")
    summary = "; ".join(f"{d['name']} ({d['protocol'] or '?'}): " + ", ".join(
        f"port {pt['port']} {pt['state']} {pt['netdev'] or '-'}" for pt in d["ports"]) for d in devs)
    if problems:
        return check("rdma-devices", WARN, "; ".join(problems), " && ".join(dict.fromkeys(fixes)) or None,
                     devices=devs)
    return check("rdma-devices", OK, summary, devices=devs)


def check_sriov(inv: dict[str, Any], want: Optional[str]) -> dict[str, Any]:
    pfs = inv["sriov"]
    if not pfs:
        status = WARN if want == "exclusive" else OK
        return check("sriov", status, "no SR-IOV capable device",
                     "enable SR-IOV in the BIOS and the NIC firmware (mlxconfig set SRIOV_EN=1 NUM_OF_VFS=N)"
                     if status == WARN else None)
    problems, fixes, lines = [], [], []
    for pf in pfs:
        netdev = pf["netdevs"][0] if pf["netdevs"] else pf["device"]
        name = f"{netdev} ({pf['device']}{', ' + pf['model'] if pf.get('model') else ''})"
        lines.append(f"{name}: {pf['numvfs']}/{pf['totalvfs'] if pf['totalvfs'] is not None else '?'} VFs, "
                     f"eswitch {pf['eswitch'] or '?'}")
        if not pf["numvfs"]:
            problems.append(f"{netdev} has no VFs")
            n = pf["totalvfs"] or 8
            fixes.append(f"echo {n} > /sys/class/net/{netdev}/device/sriov_numvfs")
        for vf in pf["vfs"]:
            if vf["mode"] in ("unbound", "no-netdev"):
                problems.append(f"VF {vf['vf']} ({vf['pci']}) of {netdev}: "
                                + ("no driver bound" if vf["mode"] == "unbound" else f"driver {vf['driver']} "
                                   "gave it no netdev"))
                fixes.append(f"echo {vf['pci']} > /sys/bus/pci/drivers_probe")
            elif want == "exclusive" and pf["bus"] == "pci" and vf["mode"] == "netdev" and not vf["rdma"]:
                problems.append(f"VF {vf['vf']} ({vf['pci']}) of {netdev} has no RDMA device")
                fixes.append("modprobe mlx5_ib")
    if problems:
        status = FAIL if want == "exclusive" else WARN
        return check("sriov", status, "; ".join(problems), " && ".join(dict.fromkeys(fixes)), pfs=pfs)
    return check("sriov", OK, "; ".join(lines), pfs=pfs)


def check_dev_infiniband(p: Paths, inv: dict[str, Any]) -> dict[str, Any]:
    devs = inv["rdma"]["devices"]
    if not os.path.isdir(p.dev_dir):
        status = FAIL if devs else WARN
        return check("dev-infiniband", status, f"{p.dev_dir} is missing: pods cannot open verbs devices",
                     "modprobe -a ib_uverbs rdma_ucm ib_umad")
    entries = set(list_dir(p.dev_dir))
    missing, modules = [], []
    if "rdma_cm" not in entries:
        missing.append("rdma_cm")
        modules.append("rdma_ucm")
    per_dev = char_devices(p.sysfs)
    for d in devs:
        nodes = per_dev.get(d["name"], {})
        for _, prefix, module in CHAR_CLASSES:
            node = nodes.get(prefix)
            if node is None or node not in entries:
                missing.append(f"{prefix} of {d['name']}" + (f" ({node})" if node else ""))
                modules.append(module)
    found = ", ".join(sorted(entries)) or "empty"
    if missing:
        # the device plugins refuse such a device: 'RDMA device "issm" not found'
        return check("dev-infiniband", FAIL if devs else WARN, f"{p.dev_dir} lacks {', '.join(missing)}",
                     f"modprobe -a {' '.join(dict.fromkeys(modules))}", entries=sorted(entries))
    return check("dev-infiniband", OK, f"{p.dev_dir}: {found}", entries=sorted(entries))


def char_devices(sysfs: Sysfs) -> dict[str, dict[str, str]]:
    """RDMA device -> {"uverbs": "uverbs0", "umad": "umad0", "issm": "issm0"} from the char device classes."""
    out: dict[str, dict[str, str]] = {}
    for cls, prefix, _ in CHAR_CLASSES:
        for node in list_dir(sysfs.path("class", cls)):
            if node.startswith(prefix):
                ibdev = sysfs.read(sysfs.path("class", cls, node, "ibdev"))
                if ibdev:
                    out.setdefault(ibdev, {}).setdefault(prefix, node)
    return out


def _ours(path: str) -> Optional[bool]:
    """True: a link into a cni-rdma bundle; False: some other file (a Go plugin); None: absent."""
    if not os.path.lexists(path):
        return None
    if os.path.islink(path):
        return os.path.basename(os.path.realpath(path)) == "cni-rdma"
    return False


def check_cni_bin(p: Paths) -> dict[str, Any]:
    if not os.path.isdir(p.bin_dir):
        return check("cni-bin", FAIL, f"CNI bin dir {p.bin_dir} does not exist",
                     f"cni-rdma install --bin-dir {p.bin_dir}")
    state = {t: _ours(os.path.join(p.bin_dir, t)) for t in sorted(PLUGINS)}
    missing = [t for t, v in state.items() if v is None]
    shadowed = [t for t, v in state.items() if v is False]
    if missing:
        return check("cni-bin", FAIL, f"not installed in {p.bin_dir}: {', '.join(missing)}"
                     + (f"; other binaries named {', '.join(shadowed)}" if shadowed else ""),
                     f"cni-rdma install --bin-dir {p.bin_dir}" + (" --force" if shadowed else ""), plugins=state)
    if shadowed:
        return check("cni-bin", WARN, f"{', '.join(shadowed)} in {p.bin_dir} are not ours (Go reference "
                     "plugins?): they answer instead of cni-rdma", f"cni-rdma install --bin-dir {p.bin_dir} --force",
                     plugins=state)
    return check("cni-bin", OK, f"{', '.join(state)} in {p.bin_dir} link to cni-rdma", plugins=state)


def check_cni_conf(p: Paths, nets: list[dict[str, Any]], problems: list[str]) -> dict[str, Any]:
    if not os.path.isdir(p.conf_dir):
        return check("cni-conf", FAIL, f"CNI conf dir {p.conf_dir} does not exist",
                     f"mkdir -p {p.conf_dir}   # then install Multus, which writes its config there")
    multus = [n for n in nets if "multus" in n["types"] or "multus" in os.path.basename(n["file"])]
    names = [f"{n['name']} ({'>'.join(n['types'])})" for n in nets]
    if problems:
        return check("cni-conf", WARN, "; ".join(problems), "fix or remove the file(s) named", networks=names)
    if not multus:
        return check("cni-conf", WARN, f"no Multus config in {p.conf_dir}: pods get only the default network"
                     + (f" ({', '.join(names)})" if names else ""),
                     "install Multus (thick plugin daemonset), which writes 00-multus.conf", networks=names)
    return check("cni-conf", OK, f"{len(nets)} network config(s), Multus present: {', '.join(names)}",
                 networks=names)


def _writable(path: str) -> bool:
    while not os.path.exists(path):  # created on first use: its first existing parent must be writable
        parent = os.path.dirname(path)
        if parent == path:
            return False
        path = parent
    return os.path.isdir(path) and os.access(path, os.W_OK | os.X_OK)


def check_ipam_dirs(p: Paths, nets: list[dict[str, Any]]) -> dict[str, Any]:
    dirs = {p.ipam_dir, p.state_dir}
    for n in nets:
        for ipam in n["ipam_conf"]:
            if ipam.get("type") == "host-local" and isinstance(ipam.get("dataDir"), str):
                dirs.add(ipam["dataDir"])
    bad = sorted(d for d in dirs if not _writable(d))
    if bad:
        return check("ipam-dirs", FAIL, f"not writable: {', '.join(bad)}",
                     " && ".join(f"mkdir -p -m 0755 {d}" for d in bad) + "   # and mount it read-write")
    return check("ipam-dirs", OK, f"writable: {', '.join(sorted(dirs))}")


def _etcd_health(endpoint: str, timeout: float = 2.0) -> Optional[str]:
    """None when GET /health answers 200 with health true; else what went wrong."""
    parsed = split_endpoint(endpoint)
    if parsed is None:
        return f"not an http(s)://host:port URL: {one_line(endpoint)}"
    scheme, host, port = parsed
    try:
        with socket.create_connection((host, port), timeout=timeout) as s:
            if scheme == "https":
                return None  # reachable; TLS health needs the client certificates the plugin has
            s.sendall(f"GET /health HTTP/1.0\r\nHost: {host}\r\n\r\n".encode())
            s.settimeout(timeout)
            data = b""
            while len(data) < 65536:
                b = s.recv(4096)
                if not b:
                    break
                data += b
    except OSError as e:
        return f"{endpoint}: {e.strerror or e}"
    head, _, body = data.partition(b"\r\n\r\n")
    status_line = head.split(b"\r\n", 1)[0].decode(errors="replace")
    if " 200 " not in status_line + " " or b'"true"' not in body.replace(b" ", b""):
        return f"{endpoint}: unhealthy ({one_line(status_line)})"
    return None


def split_endpoint(endpoint: str) -> Optional[tuple[str, str, int]]:
    """"http://10.0.0.1:2379" / "[::1]:2379" / "host" -> (scheme, host, port); None if malformed."""
    scheme, sep, rest = endpoint.partition("://")
    if not sep:
        scheme, rest = "http", endpoint
    if scheme not in ("http", "https"):
        return None
    rest = rest.split("/", 1)[0]
    if rest.startswith("["):
        host, _, tail = rest[1:].partition("]")
        port_s = tail[1:] if tail.startswith(":") else ""
    else:
        host, _, port_s = rest.partition(":")
    try:
        port = int(port_s) if port_s else 2379
    except ValueError:
        return None
    return (scheme, host, port) if host and 0 < port < 65536 else None


def check_cluster_ipam(nets: list[dict[str, Any]]) -> dict[str, Any]:
    endpoints: dict[str, list[str]] = {}
    errors: list[str] = []
    for n in nets:
        for ipam in n["ipam_conf"]:
            if ipam.get("type") == "cluster-ipam":
                etcd: Any = ipam.get("etcd") if isinstance(ipam.get("etcd"), dict) else {}
                if "endpoints" not in etcd:  # the node-local etcd config file (cluster-ipam's default)
                    path: str = etcd["configFile"] if isinstance(etcd.get("configFile"), str) else ETCD_CONFIG
                    try:
                        etcd = read_json(path)
                    except CliError as e:
                        errors.append(f"{n['name']}: {e.message}")
                        continue
                    etcd = etcd if isinstance(etcd, dict) else {}
                eps: list[Any] = etcd["endpoints"] if isinstance(etcd.get("endpoints"), list) else []
                endpoints[str(n["name"])] = [str(e) for e in eps]
    if not endpoints and not errors:
        return check("cluster-ipam", OK, "no cluster-ipam network configured here")
    for net, eps in endpoints.items():
        if not eps:
            errors.append(f"{net}: no etcd endpoints")
            continue
        failed = [e for e in (_etcd_health(ep) for ep in eps) if e]
        if len(failed) == len(eps):
            errors.append(f"{net}: " + "; ".join(failed))
    if errors:
        return check("cluster-ipam", FAIL, "etcd unreachable: " + "; ".join(errors),
                     "check ipam.etcd.endpoints and that etcd listens there: etcdctl --endpoints=... endpoint health")
    return check("cluster-ipam", OK, "etcd reachable for " + ", ".join(endpoints), endpoints=endpoints)


def run(p: Paths, mode: Optional[str], backend: str) -> dict[str, Any]:
    inv = inventory.collect(p.sysfs, backend)
    nets, problems = scan_confs(p.conf_dir)
    want: Optional[str]
    if mode:
        want, why = mode, "--mode"
    else:
        want, why = wanted_mode(nets)
    checks = [
        check_modules(p, inv),
        check_netns_mode(inv, want, why),
        check_netns_mode_boot(p, inv, want),
        check_rdma_devices(inv, want),
        check_sriov(inv, want),
        check_dev_infiniband(p, inv),
        check_cni_bin(p),
        check_cni_conf(p, nets, problems),
        check_ipam_dirs(p, nets),
        check_cluster_ipam(nets),
    ]
    counts = {s: sum(1 for c in checks if c["status"] == s) for s in (OK, WARN, FAIL)}
    return {"mode": want, "backend": inv["backend"], "summary": counts, "checks": checks, "inventory": inv}


def render(report: dict[str, Any]) -> str:
    mark = {OK: "ok  ", WARN: "WARN", FAIL: "FAIL"}
    width = max(len(c["check"]) for c in report["checks"])
    lines = []
    for c in report["checks"]:
        lines.append(f"{mark[c['status']]}  {c['check'].ljust(width)}  {one_line(c['summary'])}")
        if c["fix"] and c["status"] != OK:
            lines.append(f"{'':4}  {'':{width}}  fix: {one_line(c['fix'])}")
    inv = report["inventory"]
    pci = ", ".join(f"{f['pci']} {f.get('vendor') or f['vendor_id']} {f.get('model') or f['device_id']}"
                    for f in inv["pci"]) or "none"
    s = report["summary"]
    lines.append(f"network functions ({inv['backend']}): {one_line(pci)}")
    lines.append(f"{s[OK]} ok, {s[WARN]} warn, {s[FAIL]} fail (mode: {report['mode'] or 'not decided'})")
    return "\n".join(lines)
