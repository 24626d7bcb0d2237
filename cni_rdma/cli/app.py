"""The `cni-rdma` command group (click). Subcommands import their modules lazily.

Exit codes: 0 ok, 1 a check or operation failed, 2 bad usage or input, 3 `doctor --strict` warnings only.
Shell completion: `eval "$(_CNI_RDMA_COMPLETE=bash_source cni-rdma)"` (zsh_source, fish_source), or
`cni-rdma completion bash`.
"""
from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, Optional

import click

from .common import (
    DEFAULT_BIN_DIR,
    DEFAULT_CONF_DIR,
    DEFAULT_IPAM_DIR,
    DEFAULT_STATE_ROOT,
    EXIT_FAILED,
    EXIT_WARN,
    CliError,
    emit_json,
    one_line,
    table,
    warn,
)

if TYPE_CHECKING:
    from .nad import ExclusivePlan

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 110}


def _print_version(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if value and not ctx.resilient_parsing:
        from cni_rdma.version import print_build_version

        print_build_version("cni-rdma")
        ctx.exit(0)


@click.group(context_settings=CONTEXT)
@click.option("--version", is_flag=True, expose_value=False, is_eager=True, callback=_print_version,
              help="Build version, commit and CNI versions spoken.")
def cli() -> None:
    """Operate cni-rdma on a node: check it, write NetworkAttachmentDefinitions, run CNI by hand,
    inspect plugin state and IPAM reservations."""


def _sysfs_option(f):
    return click.option("--sysfs-root", default="/sys", show_default=True, envvar="CNI_RDMA_SYSFS_ROOT",
                        help="sysfs to read (a fake tree in tests).")(f)


# ------------------------------------------------------------------------------------- doctor
@cli.command()
@click.option("--mode", type=click.Choice(["shared", "exclusive"]),
              help="RDMA netns mode the NADs need (default: decided from the CNI conf dir).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable report.")
@click.option("--strict", is_flag=True, help="Exit 3 when there are warnings but no failures.")
@click.option("--backend", type=click.Choice(["auto", "udev", "sysfs"]), default="auto", show_default=True,
              help="Device enumeration: pyudev + hwdb, or plain sysfs.")
@_sysfs_option
@click.option("--cni-bin-dir", default=DEFAULT_BIN_DIR, show_default=True)
@click.option("--cni-conf-dir", default=DEFAULT_CONF_DIR, show_default=True)
@click.option("--ipam-dir", default=DEFAULT_IPAM_DIR, show_default=True, help="host-local's default dataDir.")
@click.option("--state-dir", default=DEFAULT_STATE_ROOT, show_default=True, help="Plugin state root.")
@click.option("--dev-dir", default="/dev/infiniband", show_default=True, hidden=True)
@click.option("--host-root", default="/", show_default=True, hidden=True,
              help="Where /proc/cmdline and the modprobe.d dirs are read (tests).")
def doctor(mode: Optional[str], as_json: bool, strict: bool, backend: str, sysfs_root: str, cni_bin_dir: str,
           cni_conf_dir: str, ipam_dir: str, state_dir: str, dev_dir: str, host_root: str) -> None:
    """Check this node for RDMA pods: ok / warn / fail per check, with the command that fixes it."""
    from cni_rdma.sysfs import Sysfs

    from . import doctor as doc
    from .inventory import BackendUnavailable

    paths = doc.Paths(Sysfs(sysfs_root), cni_bin_dir, cni_conf_dir, ipam_dir, state_dir, dev_dir, host_root)
    try:
        report = doc.run(paths, mode, backend)
    except BackendUnavailable as e:
        raise CliError(str(e)) from None
    if as_json:
        emit_json(report)
    else:
        click.echo(doc.render(report))
    if report["summary"]["fail"]:
        raise click.exceptions.Exit(EXIT_FAILED)
    if strict and report["summary"]["warn"]:
        raise click.exceptions.Exit(EXIT_WARN)


# ------------------------------------------------------------------------------------ devices
@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable inventory.")
@click.option("--backend", type=click.Choice(["auto", "udev", "sysfs"]), default="auto", show_default=True)
@_sysfs_option
def devices(as_json: bool, backend: str, sysfs_root: str) -> None:
    """List RDMA devices (ports, netdevs), network PCI functions and SR-IOV PFs with their VFs."""
    from cni_rdma.sysfs import Sysfs

    from .inventory import BackendUnavailable, collect

    try:
        inv = collect(Sysfs(sysfs_root), backend)
    except BackendUnavailable as e:
        raise CliError(str(e)) from None
    if as_json:
        emit_json(inv)
        return
    rdma = inv["rdma"]
    click.echo(f"RDMA (netns mode {rdma['netns_mode'] or '?'}){': ' + rdma['error'] if rdma['error'] else ''}")
    rows = [[d["name"], p["port"], p["state"], p["netdev"], d["protocol"], d["driver"] or ""]
            for d in rdma["devices"] for p in d["ports"]]
    click.echo(table(rows, ["device", "port", "state", "netdev", "protocol", "driver"]))
    click.echo(f"\nnetwork PCI functions ({inv['backend']})")
    rows = [[f["pci"], f"{f['vendor_id']}:{f['device_id']}", f["vendor"], f["model"], f["driver"], f["netdevs"],
             f["rdma"], f["physfn"]] for f in inv["pci"]]
    click.echo(table(rows, ["pci", "id", "vendor", "model", "driver", "netdevs", "rdma", "physfn"]))
    click.echo("\nSR-IOV")
    rows = []
    for pf in inv["sriov"]:
        rows.append([pf["device"], "PF", pf["driver"], pf["netdevs"], "", f"{pf['numvfs']}/{pf['totalvfs']}",
                     pf["eswitch"]])
        rows += [[vf["pci"] or f"{pf['device']} vf{vf['vf']}", f"VF {vf['vf']}", vf["driver"], vf["netdevs"],
                  vf["rdma"], vf["mode"], ""] for vf in pf["vfs"]]
    click.echo(table(rows, ["device", "role", "driver", "netdevs", "rdma", "vfs/mode", "eswitch"]))


# ---------------------------------------------------------------------------------------- nad
@cli.group()
def nad() -> None:
    """Write a NetworkAttachmentDefinition (YAML on stdout, or --output FILE)."""


def _nad_options(f):
    for opt in reversed([
        click.option("--name", required=True, help="NAD and CNI network name (DNS-1123 label)."),
        click.option("--namespace", default="default", show_default=True),
        click.option("--subnet", required=True, help="Pod address range, e.g. 192.168.10.0/24."),
        click.option("--range-start"), click.option("--range-end"), click.option("--gateway"),
        click.option("--route", "routes", multiple=True, help="DST_CIDR[,GATEWAY]; repeatable."),
        click.option("--ipam", type=click.Choice(["host-local", "cluster-ipam"]), default="host-local",
                     show_default=True, help="cluster-ipam: one pool for every node, in etcd."),
        click.option("--etcd-endpoint", "etcd", multiple=True,
                     help="cluster-ipam etcd URL; repeatable (default: the node's /etc/cni/net.d/cni-rdma-etcd.json)."),
        click.option("--pool", help="cluster-ipam pool (default: the network name); NADs naming one pool share it."),
        click.option("--mtu", type=click.IntRange(68, 65535)),
        click.option("--cni-version", default="1.0.0", show_default=True,
                     type=click.Choice(["0.3.1", "0.4.0", "1.0.0", "1.1.0"])),
        click.option("--output", "-o", type=click.Path(dir_okay=False, writable=True), help="Write here."),
    ]):
        f = opt(f)
    return f


def _emit_nad(text: str, output: Optional[str]) -> None:
    if not output:
        click.echo(text, nl=False)
        return
    tmp = f"{output}.{os.getpid()}.tmp"
    try:
        with open(tmp, "x") as f:
            f.write(text)
        os.replace(tmp, output)
    except OSError as e:
        raise CliError(f"cannot write {output}: {e.strerror or e}") from None


@nad.command("shared")
@_nad_options
@click.option("--type", "plugin", type=click.Choice(["macvlan", "ipvlan"]), default="macvlan", show_default=True)
@click.option("--master", help="RoCE netdev the child hangs off (default: the node's default-route link).")
@click.option("--mode", help="macvlan: bridge|private|vepa|passthru; ipvlan: l2|l3|l3s.")
@click.option("--from-node", is_flag=True, help="Take --master from this node's first active RDMA port.")
def nad_shared(name, namespace, subnet, range_start, range_end, gateway, routes, ipam, etcd, pool, mtu,
               cni_version, output, plugin, master, mode, from_node) -> None:
    """Shared mode: a macvlan/ipvlan child of the RoCE NIC; RDMA devices stay shared."""
    from . import nad as n

    if from_node and not master:
        from cni_rdma.sysfs import Sysfs

        from .inventory import collect

        master = n.from_node(collect(Sysfs.from_env(), "auto"))
        if not master:
            raise CliError("--from-node: no active RDMA port with a netdev on this node (see `cni-rdma doctor`)",
                           EXIT_FAILED)
    block = n.ipam_block(ipam, subnet, range_start, range_end, gateway, routes, etcd, pool=pool)
    conf = n.shared_config(name, cni_version, plugin, master, mode, mtu, block)
    _emit_nad(n.render(name, namespace, conf), output)


@nad.command("exclusive")
@_nad_options
@click.option("--resource-name",
              help="SR-IOV device plugin resource of RDMA-capable VFs, e.g. nvidia.com/sriov_rdma "
                   "(required without --from-node; with it, overrides the pick).")
@click.option("--vlan", type=click.IntRange(0, 4094))
@click.option("--trust/--no-trust", default=None)
@click.option("--spoofchk/--no-spoofchk", default=None)
@click.option("--from-node", is_flag=True,
              help="Read this node: PFs with RDMA-capable VFs, their MTU (default --mtu), the RDMA netns mode, and "
                   "the device plugin resource pooling those VFs (--resource-name).")
@click.option("--device-plugin-config", default="/etc/pcidp/config.json", show_default=True,
              help="sriov-network-device-plugin's config.json (--from-node), e.g. its ConfigMap's data saved "
                   "to a file.")
@click.option("--resource-prefix", default="intel.com", show_default=True,
              help="The device plugin's --resource-prefix, for resources without resourcePrefix (--from-node).")
@_sysfs_option
def nad_exclusive(name, namespace, subnet, range_start, range_end, gateway, routes, ipam, etcd, pool, mtu,
                  cni_version, output, resource_name, vlan, trust, spoofchk, from_node, device_plugin_config,
                  resource_prefix, sysfs_root) -> None:
    """Exclusive mode: sriov moves a VF into the pod, rdma moves its RDMA device after it."""
    from . import nad as n

    if not from_node and not resource_name:
        raise CliError("--resource-name is required (or --from-node to read it from the device plugin's config)")
    block = n.ipam_block(ipam, subnet, range_start, range_end, gateway, routes, etcd, pool=pool)
    if from_node:
        plan = _exclusive_from_node(sysfs_root, device_plugin_config, resource_prefix, resource_name)
        resource_name, mtu = plan.resource, mtu or plan.mtu
    conf = n.exclusive_config(name, cni_version, vlan, mtu, trust, spoofchk, block)
    text = n.render(name, namespace, conf, resource_name)
    if from_node:
        for line in plan.info:
            click.echo(f"cni-rdma: node: {one_line(line)}", err=True)
        for line in plan.warnings:
            warn(line)
    _emit_nad(text, output)


def _exclusive_from_node(sysfs_root: str, config: str, prefix: str,
                         resource_name: Optional[str]) -> ExclusivePlan:
    from cni_rdma.sysfs import Sysfs

    from . import devplugin
    from . import nad as n
    from .inventory import collect

    sysfs = Sysfs(sysfs_root)
    inv = collect(sysfs, "auto")
    vfs = devplugin.node_vfs(sysfs, inv["sriov"])
    pf_mtu = {}
    for pf in inv["sriov"]:
        mtus = [sysfs.read_int(os.path.join(sysfs.net_dir(d), "mtu")) for d in pf["netdevs"]]
        pf_mtu[pf["device"]] = next((m for m in mtus if m), None)
    try:
        resources: Optional[list[devplugin.Resource]] = devplugin.load(config, prefix)
    except CliError as e:
        if not resource_name and any(v.rdma for v in vfs):
            raise CliError(f"--from-node: {e.message} (save the device plugin's config.json and pass "
                           "--device-plugin-config PATH, or pass --resource-name)") from None
        resources = None
    return n.exclusive_from_node(inv, vfs, pf_mtu, resources, resource_name, config)


# --------------------------------------------------------------------------------- completion
@cli.command()
@click.argument("shell", type=click.Choice(["bash", "zsh", "fish"]))
def completion(shell: str) -> None:
    """Print the shell completion script: eval "$(cni-rdma completion bash)"."""
    from click.shell_completion import get_completion_class

    cls = get_completion_class(shell)
    assert cls is not None
    click.echo(cls(cli, {}, "cni-rdma", "_CNI_RDMA_COMPLETE").source())


# --------------------------------------------------------------------------------------- exec
def _exec_options(f):
    for opt in reversed([
        click.option("--conf-dir", envvar="NETCONFPATH", default=DEFAULT_CONF_DIR, show_default=True,
                     help="Network configs (NETCONFPATH)."),
        click.option("--cni-path", envvar="CNI_PATH", default=DEFAULT_BIN_DIR, show_default=True,
                     help="Plugin dirs, ':'-separated (CNI_PATH)."),
        click.option("--cache-dir", envvar="CNI_CACHE_DIR", default=DEFAULT_STATE_ROOT, show_default=True,
                     help="libcni cache root: results in <dir>/results."),
    ]):
        f = opt(f)
    return f


def _complete_network(ctx: click.Context, _param: click.Parameter, incomplete: str) -> list[str]:
    """Network names of the conf dir (--conf-dir, NETCONFPATH or the default) for shell completion."""
    from .doctor import scan_confs

    conf_dir = ctx.params.get("conf_dir") or os.environ.get("NETCONFPATH") or DEFAULT_CONF_DIR
    try:
        nets, _ = scan_confs(conf_dir)
    except CliError:
        return []
    return sorted({str(n["name"]) for n in nets if n["name"] and str(n["name"]).startswith(incomplete)})


def _complete_netns(_ctx: click.Context, _param: click.Parameter, incomplete: str) -> list[str]:
    """`ip netns` names, and paths when a path is being typed."""
    if "/" in incomplete:
        base = os.path.dirname(incomplete)
        try:
            return sorted(os.path.join(base, e) for e in os.listdir(base or "/")
                          if os.path.join(base, e).startswith(incomplete))
        except OSError:
            return []
    try:
        return sorted(e for e in os.listdir("/var/run/netns") if e.startswith(incomplete))
    except OSError:
        return []


def _network(conf_dir: str, network: str):
    from .cniexec import load_network

    return load_network(conf_dir, network)


def _runtime(netns: str, cni_path: str, cache_dir: str, container_id: Optional[str], need_netns: bool):
    from .cniexec import Runtime, container_id_for, parse_cap_args, parse_cni_args
    from .common import netns_alive

    if "/" not in netns and not os.path.exists(netns) and os.path.exists(f"/var/run/netns/{netns}"):
        netns = f"/var/run/netns/{netns}"  # `ip netns` name
    netns = os.path.abspath(netns)
    if need_netns and not netns_alive(netns):
        raise CliError(f"netns {netns} does not exist (or is not a network namespace)")
    args = os.environ.get("CNI_ARGS", "")
    return Runtime(container_id or container_id_for(netns), netns, os.environ.get("CNI_IFNAME", "eth0"),
                   parse_cni_args(args) if args else [], parse_cap_args(os.environ.get("CAP_ARGS", "")),
                   [p for p in cni_path.split(os.pathsep) if p], cache_dir)


@cli.group("exec")
def exec_group() -> None:
    """Run a network's plugin chain by hand, as cnitool does (NETCONFPATH, CNI_PATH, CNI_IFNAME, CNI_ARGS,
    CAP_ARGS), keeping libcni's result cache so CHECK and DEL get prevResult."""


def _exec_command(command: str):
    need = command in ("add", "check")

    @exec_group.command(command)
    @click.argument("network", shell_complete=_complete_network)
    @click.argument("netns", shell_complete=_complete_netns)
    @_exec_options
    @click.option("--container-id", help="Default: cnitool's, derived from the netns path.")
    def run(network: str, netns: str, conf_dir: str, cni_path: str, cache_dir: str,
            container_id: Optional[str]) -> None:
        from . import cniexec

        nl = _network(conf_dir, network)
        rt = _runtime(netns, cni_path, cache_dir, container_id, need)
        if command == "add":
            cniexec.print_result(cniexec.add(nl, rt))
        elif command == "check":
            cniexec.check(nl, rt)
        else:
            cniexec.delete(nl, rt)

    run.__doc__ = {"add": "ADD the network to NETNS and print the result.",
                   "check": "CHECK the attachment against the cached result.",
                   "del": "DEL the attachment (with the cached prevResult)."}[command]
    return run


for _cmd in ("add", "check", "del"):
    _exec_command(_cmd)


@exec_group.command("status")
@click.argument("network", shell_complete=_complete_network)
@click.argument("netns", required=False)
@_exec_options
def exec_status(network: str, netns: Optional[str], conf_dir: str, cni_path: str, cache_dir: str) -> None:
    """STATUS of every plugin of the network (CNI 1.1); NETNS is accepted and ignored, as by cnitool."""
    from . import cniexec

    note = cniexec.status(_network(conf_dir, network), [p for p in cni_path.split(os.pathsep) if p])
    if note:
        click.echo(note, err=True)


@exec_group.command("gc")
@click.argument("network", shell_complete=_complete_network)
@click.argument("netns", required=False)
@_exec_options
@click.option("--all", "collect_all", is_flag=True, help="No attachment is valid (cnitool's gc): DEL every one.")
@click.option("--dry-run", is_flag=True, help="Only print what would be done.")
def exec_gc(network: str, netns: Optional[str], conf_dir: str, cni_path: str, cache_dir: str, collect_all: bool,
            dry_run: bool) -> None:
    """DEL cached attachments whose netns is gone, then GC the plugins with the valid ones (CNI 1.1)."""
    from . import cniexec

    nl = _network(conf_dir, network)
    rt = cniexec.Runtime("", "", "", [], None, [p for p in cni_path.split(os.pathsep) if p], cache_dir)
    for line in cniexec.gc(nl, rt, collect_all, dry_run):
        click.echo(("would " if dry_run else "") + line)


# -------------------------------------------------------------------------------- state, ipam
def _state_options(f):
    for opt in reversed([
        click.option("--state-dir", default=DEFAULT_STATE_ROOT, show_default=True, help="Plugin state root."),
        click.option("--ipam-dir", default=DEFAULT_IPAM_DIR, show_default=True, help="host-local's dataDir."),
        click.option("--cache-dir", envvar="CNI_CACHE_DIR", default=DEFAULT_STATE_ROOT, show_default=True,
                     help="libcni cache root (netns of each attachment)."),
    ]):
        f = opt(f)
    return f


@cli.group(invoke_without_command=True)
@_state_options
@click.option("--json", "as_json", is_flag=True, help="Machine-readable listing.")
@click.pass_context
def state(ctx: click.Context, state_dir: str, ipam_dir: str, cache_dir: str, as_json: bool) -> None:
    """List sriov/rdma records and host-local reservations, with whether their pod's netns still exists."""
    if ctx.invoked_subcommand:
        return
    from . import nodestate as ns

    records = ns.plugin_records(state_dir)
    res = ns.reservations(ipam_dir, cache_dir, records)
    if as_json:
        emit_json({"records": records, "reservations": res})
        return
    click.echo(table([[r["plugin"], r["network"] or r["record"], r["container"], r["ifname"], r["device"],
                       r["detail"], r["netns"], r["state"]] for r in records],
                     ["plugin", "network/record", "container", "ifname", "device", "detail", "netns", "state"]))
    rows = [[net, r.get("ip"), r.get("container"), r.get("ifname"), r.get("netns"), r.get("state") or r.get("error")]
            for net, rs in res.items() for r in rs]
    click.echo("\n" + table(rows, ["network", "ip", "container", "ifname", "netns", "state"]))


@state.command("gc")
@_state_options
@click.option("--dry-run", is_flag=True, help="Only print what would be released.")
def state_gc(state_dir: str, ipam_dir: str, cache_dir: str, dry_run: bool) -> None:
    """Release VFs, RDMA records and host-local addresses of pods whose netns is gone."""
    from . import nodestate as ns

    actions, errors = ns.gc(state_dir, ipam_dir, cache_dir, dry_run)
    for line in actions:
        click.echo(line)
    if not actions:
        click.echo("nothing to release")
    if errors:
        raise CliError("; ".join(errors), EXIT_FAILED)


@cli.group()
def ipam() -> None:
    """host-local reservations per network: ranges, used/free, owners, leaks; release by hand."""


@ipam.command("ls")
@click.argument("network", required=False)
@_state_options
@click.option("--conf-dir", envvar="NETCONFPATH", default=DEFAULT_CONF_DIR, show_default=True,
              help="Where the network's ranges are read from.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable listing.")
def ipam_ls(network: Optional[str], state_dir: str, ipam_dir: str, cache_dir: str, conf_dir: str,
            as_json: bool) -> None:
    """Per network: ranges, used/free, reservations by container, leaked ones (netns gone or unknown)."""
    from . import nodestate as ns

    res = ns.reservations(ipam_dir, cache_dir, ns.plugin_records(state_dir), network)
    if network and network not in res:
        raise CliError(f"no host-local reservations for network {network!r} in {ipam_dir}")
    out: list[dict[str, Any]] = []
    for net, rows in res.items():
        ranges = ns.network_ranges(conf_dir, net)
        used = [r for r in rows if "ip" in r]
        capacity = sum(r["capacity"] for r in ranges) if ranges else None
        out.append({"network": net, "ranges": ranges, "used": len(used),
                    "free": capacity - len(used) if capacity is not None else None,
                    "leaked": [r for r in used if r["state"] != "alive"], "reservations": rows})
    if as_json:
        emit_json(out)
        return
    for n in out:
        rng = ", ".join(f"{r['range']} ({r['capacity']})" for r in n["ranges"] or []) or "ranges unknown (no config)"
        click.echo(f"{n['network']}: {rng}; used {n['used']}, free {n['free'] if n['free'] is not None else '?'}, "
                   f"leaked {len(n['leaked'])}")
        click.echo(table([[r.get("ip"), r.get("container"), r.get("ifname"), r.get("netns"),
                           r.get("state") or r.get("error")] for r in n["reservations"]],
                         ["ip", "container", "ifname", "netns", "state"]))


@ipam.command("release")
@click.argument("network")
@click.option("--container", "container_id", help="Release every address of this container ID.")
@click.option("--ifname", help="With --container: only this interface's.")
@click.option("--ip", "ips", multiple=True, help="Release this address; repeatable.")
@click.option("--leaked", is_flag=True, help="Release every address whose netns is gone.")
@click.option("--force", is_flag=True, help="Also when the owner's netns still exists.")
@_state_options
def ipam_release(network: str, container_id: Optional[str], ifname: Optional[str], ips: tuple[str, ...],
                 leaked: bool, force: bool, state_dir: str, ipam_dir: str, cache_dir: str) -> None:
    """Release host-local reservations of NETWORK (under host-local's lock)."""
    from . import nodestate as ns

    if not (container_id or ips or leaked):
        raise CliError("name what to release: --container ID, --ip IP or --leaked")
    res = ns.reservations(ipam_dir, cache_dir, ns.plugin_records(state_dir), network)
    if network not in res:
        raise CliError(f"no host-local reservations for network {network!r} in {ipam_dir}")
    rows = [r for r in res[network] if "ip" in r]
    held = {r["ip"] for r in rows}
    for ip in ips:
        if ip not in held:
            raise CliError(f"{ip} is not reserved in network {network!r}")
    chosen = [r for r in rows if r["ip"] in ips
              or (container_id and r["container"] == container_id and (not ifname or r["ifname"] == ifname))
              or (leaked and r["state"] == "gone")]
    if not chosen:
        raise CliError("nothing matches: see `cni-rdma ipam ls " + network + "`", EXIT_FAILED)
    live = [r for r in chosen if r["state"] == "alive"]
    if live and not force:
        raise CliError(f"{', '.join(r['ip'] for r in live)} still belong to a live netns "
                       f"({live[0]['netns']}): DEL the pod, or --force", EXIT_FAILED)
    for ip in ns.release(ipam_dir, network, [r["ip"] for r in chosen]):
        click.echo(f"released {network} {ip}")


# ------------------------------------------------------------------------------ install, uninstall
def _install_options(f):
    for opt in reversed([
        click.option("--lib-dir", default="/opt/cni/lib/cni-rdma", show_default=True,
                     help="Where the bundle goes (absolute: the links' target)."),
        click.option("--bin-dir", default=DEFAULT_BIN_DIR, show_default=True, help="CNI bin dir: one link per type."),
        click.option("--destdir", default="", help="Prefix for every path written (a host root mounted elsewhere)."),
    ]):
        f = opt(f)
    return f


def _installer_call(action: str, fn, *args) -> None:
    from cni_rdma import installer

    for d in args[1:3] if action == "install" else args[0:2]:
        if not os.path.isabs(d):
            raise CliError(f"{d}: --lib-dir and --bin-dir must be absolute (they are the symlinks' targets)")
    try:
        rc = fn(*args)
    except (installer.InstallError, OSError) as e:
        # the installer words a refusal over several lines ("install: ..."): one line here
        msg = "; ".join(line.strip() for line in str(e).replace("\ninstall: ", "\n").splitlines() if line.strip())
        raise CliError(f"{action}: {msg}", EXIT_FAILED) from None
    if rc:
        raise click.exceptions.Exit(rc)


@cli.command()
@click.option("--bundle", help="The onedir bundle to install (default: the running one, or build/cni-rdma).")
@_install_options
@click.option("--force", is_flag=True, envvar="FORCE",
              help="Replace regular files of the same name (the Go plugins); FORCE=1 in the environment too.")
def install(bundle: Optional[str], lib_dir: str, bin_dir: str, destdir: str, force: bool) -> None:
    """Copy the bundle to --lib-dir and link every plugin type into --bin-dir (all or nothing)."""
    from cni_rdma import installer

    _installer_call("install", installer.install, bundle or installer.default_bundle(), lib_dir, bin_dir, destdir,
                    force)


@cli.command()
@_install_options
def uninstall(lib_dir: str, bin_dir: str, destdir: str) -> None:
    """Remove the links into --lib-dir from --bin-dir, then --lib-dir. Nothing else is touched."""
    from cni_rdma import installer

    _installer_call("uninstall", installer.uninstall, lib_dir, bin_dir, destdir)
