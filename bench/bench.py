"""`make bench`: the frozen cni-rdma plugins against Debian's Go containernetworking-plugins, same machine, same run.

Interleaved rounds (the order alternates every round), each plugin a real process as kubelet runs it:
  VERSION     start-up only (CNI_COMMAND=VERSION)
  ADD, DEL    macvlan + host-local IPAM (ours runs host-local in-process; Go execs it)
  8-rail      an 8-attachment pod: 8 x (macvlan + host-local) ADD, then the 8 DELs, totals
  dual-stack  macvlan + host-local with an IPv4 and an IPv6 range: Go waits for IPv6 DAD (~1-2 s), ours
              returns at once with optimistic DAD (the `dad` key's default; tests/netns/test_ipconfig_parity.py)
  kernel      after the timed rounds: each plugin's ADD, then bench/dellink.c deletes the link (the kernel's
              share of a DEL's wall: its RTM_DELLINK waits for an RCU grace period), then the plugin's DEL
For each: wall time, CPU time (user+sys from wait4: the plugin and every child it reaped, i.e. Go's IPAM
exec) and peak RSS, measured by the small C helper bench/spawn.c (needs cc); min/median/max, and the median
of the per-round ours/Go ratios. Writes bench/results.md.
Everything happens in throwaway namespaces (tests/topology.py); the plugins run in the "node" netns.
Not a test: numbers are reported against the targets, never asserted.
"""
from __future__ import annotations

import argparse
import ctypes
import datetime
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from tests import topology  # noqa: E402

GO_DIR = Path("/usr/lib/cni")
RAILS = 8
CLONE_NEWNET = 0x40000000
# Issue 13's targets: (operation, metric) -> the most our/Go ratio may be.
TARGETS = {("VERSION", "wall_ms"): 4.5, ("ADD", "wall_ms"): 2.0, ("ADD", "cpu_ms"): 2.0, ("DEL", "wall_ms"): 1.5,
           ("DEL", "cpu_ms"): 1.5, ("8-rail ADD", "wall_ms"): 2.0, ("8-rail DEL", "wall_ms"): 1.5,
           ("dual-stack ADD", "wall_ms"): 0.1}
RSS_TARGET_MB = 15.0


@dataclass
class Sample:
    wall_ms: float
    cpu_ms: float
    rss_mb: float


@dataclass
class Series:
    samples: dict[str, list[Sample]] = field(default_factory=lambda: {"ours": [], "go": []})


SPAWN = ROOT / "build" / "bench" / "spawn"
DELLINK = ROOT / "build" / "bench" / "dellink"


def build_spawn() -> None:
    """bench/spawn.c (runs and measures one plugin) and bench/dellink.c (the kernel's share of a DEL)."""
    for exe in (SPAWN, DELLINK):
        src = ROOT / "bench" / f"{exe.name}.c"
        if exe.exists() and exe.stat().st_mtime >= src.stat().st_mtime:
            continue
        exe.parent.mkdir(parents=True, exist_ok=True)
        if not shutil.which("cc"):
            sys.exit(f"bench: needs a C compiler for bench/{src.name} (apt-get install gcc)")
        subprocess.run(["cc", "-O2", "-Wall", "-o", str(exe), str(src)], check=True)


def run(exe: Path, command: str, env_extra: dict, stdin: bytes = b"", args: tuple[str, ...] = ()
        ) -> tuple[Sample, bytes, bytes]:
    """One plugin process through bench/spawn.c: wall time spawn..reap, CPU and peak RSS from wait4's rusage."""
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "CNI_COMMAND": command, **env_extra}
    with tempfile.TemporaryDirectory(prefix="cni-rdma-bench-io-") as io:
        files = [os.path.join(io, n) for n in ("in", "out", "err")]
        Path(files[0]).write_bytes(stdin)
        p = subprocess.run([str(SPAWN), *files, str(exe), *args], env=env, capture_output=True, text=True)
        if p.returncode != 0:
            raise RuntimeError(f"spawn {exe}: {p.stderr.strip()}")
        wall_ns, cpu_us, rss_kb, code = (int(x) for x in p.stdout.split())
        out, err = Path(files[1]).read_bytes(), Path(files[2]).read_bytes()
    if code != 0:
        raise RuntimeError(f"{exe} {command} failed ({code}): {out.decode()} {err.decode()}")
    return Sample(wall_ns / 1e6, cpu_us / 1e3, rss_kb / 1024), out, err


def build_floor(ours: Path, defines: tuple[str, ...] = ("CNI_RDMA_FLOOR",), name: str = "floor") -> Path | None:
    """The frozen empty app: tools/launcher.c built with CNI_RDMA_FLOOR (it starts the bundle's interpreter
    exactly as a plugin call does, then runs nothing), next to a symlink to the bundle's _internal. No plugin
    in this bundle can start faster; what our VERSION costs above it is our own imports.
    With CNI_RDMA_IMPORTS_FLOOR: the same, plus the imports of a macvlan + host-local DEL and no work, the
    floor under any of our DELs; with CNI_RDMA_IMPORTS_FLOOR_ADD as well, those of an ADD (a DEL imports less:
    macvlan's COMMAND_IMPORTS)."""
    from tools.build_bundle import BuildError, launcher_command

    exe = ours.resolve() / "macvlan"
    bundle = exe.resolve().parent
    internal = bundle / "_internal"
    out_dir = ROOT / "build" / "bench" / name
    out = out_dir / "cni-rdma-floor"
    if out_dir.exists():
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True)
    (out_dir / "_internal").symlink_to(internal)
    interp = subprocess.run(["patchelf", "--print-interpreter", str(bundle / "cni-rdma")], capture_output=True,
                            text=True).stdout.strip().rstrip("\0")
    try:  # linked exactly as the bundle's executable, with absolute paths into the bundle
        cmd = launcher_command(out, internal, defines, rpath=f"{internal / 'lib'}:{internal}")
    except BuildError as e:
        print(f"bench: no floor build: {e}", file=sys.stderr)
        return None
    if interp:
        cmd.append(f"-Wl,--dynamic-linker={interp}")
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        print(f"bench: no floor build: {p.stderr.strip()[-300:]}", file=sys.stderr)
        return None
    return out


def setns(path: str) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(path, os.O_RDONLY)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), f"setns {path}")
    finally:
        os.close(fd)


def conf(impl: str, rail: int, data_dir: str) -> bytes:
    return json.dumps({
        "cniVersion": "1.0.0", "name": f"bench-{impl}-rail{rail}", "type": "macvlan",
        "master": f"eth{rail}", "mode": "bridge",
        "ipam": {"type": "host-local", "dataDir": data_dir,
                 "ranges": [[{"subnet": f"10.{100 + rail}.0.0/16", "gateway": f"10.{100 + rail}.0.1"}]],
                 "routes": [{"dst": "0.0.0.0/0"}]},
    }).encode()


def conf_dual(impl: str, data_dir: str) -> bytes:
    return json.dumps({
        "cniVersion": "1.0.0", "name": f"bench-{impl}-dual", "type": "macvlan", "master": "eth0", "mode": "bridge",
        "ipam": {"type": "host-local", "dataDir": data_dir,
                 "ranges": [[{"subnet": "10.99.0.0/16"}], [{"subnet": "fd99::/64"}]],
                 "routes": [{"dst": "0.0.0.0/0"}, {"dst": "::/0"}]},
    }).encode()


def stats(xs: list[float]) -> tuple[float, float, float]:
    return min(xs), statistics.median(xs), max(xs)


def fmt(xs: list[float]) -> str:
    lo, med, hi = stats(xs)
    return f"{lo:.1f} / **{med:.1f}** / {hi:.1f}"


def machine() -> list[str]:
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "?")
    go = subprocess.run(["dpkg-query", "-W", "-f=${Version}", "containernetworking-plugins"],
                        capture_output=True, text=True).stdout or "?"
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short=12", "HEAD"],
                            capture_output=True, text=True).stdout.strip()
    try:
        import PyInstaller
        pyi = PyInstaller.__version__
    except ImportError:
        pyi = "?"
    return [
        f"- date: {datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}",
        f"- machine: {cpu}, {os.cpu_count()} CPUs, kernel {platform.release()}; load average at the end "
        f"{' '.join(open('/proc/loadavg').read().split()[:3])} (shared machine: medians and per-round ratios matter)",
        f"- cni-rdma: commit {commit}, frozen with PyInstaller {pyi}, Python {platform.python_version()}",
        f"- Go reference: Debian containernetworking-plugins {go} ({GO_DIR})",
    ]


class Bench:
    def __init__(self, ours: Path, go: Path, work: str):
        self.dirs = {"ours": ours, "go": go}
        self.work = work

    def env(self, impl: str, cid: str, ifname: str, pod: str) -> dict:
        return {"CNI_CONTAINERID": cid, "CNI_NETNS": pod, "CNI_IFNAME": ifname,
                "CNI_PATH": str(self.dirs[impl])}

    def data_dir(self, impl: str) -> str:
        return os.path.join(self.work, impl)

    def version(self, impl: str) -> Sample:
        s, out, _ = run(self.dirs[impl] / "macvlan", "VERSION", {})
        assert b"supportedVersions" in out
        return s

    def add_del(self, impl: str, cid: str, pod: str) -> tuple[Sample, Sample]:
        c = conf(impl, 0, self.data_dir(impl))
        a, out, _ = run(self.dirs[impl] / "macvlan", "ADD", self.env(impl, cid, "net1", pod), c)
        assert json.loads(out)["ips"], out
        d, _, _ = run(self.dirs[impl] / "macvlan", "DEL", self.env(impl, cid, "net1", pod), c)
        return a, d

    def dual(self, impl: str, cid: str, pod: str) -> Sample:
        c = conf_dual(impl, self.data_dir(impl))
        a, out, _ = run(self.dirs[impl] / "macvlan", "ADD", self.env(impl, cid, "net9", pod), c)
        assert len(json.loads(out)["ips"]) == 2, out
        run(self.dirs[impl] / "macvlan", "DEL", self.env(impl, cid, "net9", pod), c)
        return a

    def rails(self, impl: str, cid: str, pod: str) -> tuple[Sample, Sample]:
        adds, dels = [], []
        for r in range(RAILS):
            adds.append(run(self.dirs[impl] / "macvlan", "ADD", self.env(impl, cid, f"net{r + 1}", pod),
                            conf(impl, r, self.data_dir(impl)))[0])
        for r in reversed(range(RAILS)):
            dels.append(run(self.dirs[impl] / "macvlan", "DEL", self.env(impl, cid, f"net{r + 1}", pod),
                            conf(impl, r, self.data_dir(impl)))[0])

        def total(xs: list[Sample]) -> Sample:
            return Sample(sum(x.wall_ms for x in xs), sum(x.cpu_ms for x in xs), max(x.rss_mb for x in xs))

        return total(adds), total(dels)

    def kernel_delete(self, impl: str, cid: str, pod: str) -> tuple[Sample, float]:
        """That plugin's ADD, then bench/dellink.c deletes the link (the process, and the RTM_DELLINK alone, ms);
        the plugin's DEL then releases the address (the link is gone: DEL is idempotent)."""
        c = conf(impl, 0, self.data_dir(impl))
        env = self.env(impl, cid, "net1", pod)
        run(self.dirs[impl] / "macvlan", "ADD", env, c)
        s, out, _ = run(DELLINK, "DEL", {}, args=(pod, "net1"))
        run(self.dirs[impl] / "macvlan", "DEL", env, c)
        return s, int(out) / 1e3


def table(results: dict[str, Series]) -> list[str]:
    lines = [
        "| operation | metric | cni-rdma (frozen) min / **median** / max | Go min / **median** / max "
        "| ratio (median of per-round) | target |",
        "|---|---|---|---|---|---|",
    ]
    for op, series in results.items():
        ours, go = series.samples["ours"], series.samples["go"]
        if not ours:
            continue
        for metric, unit in (("wall_ms", "wall ms"), ("cpu_ms", "CPU ms"), ("rss_mb", "peak RSS MB")):
            target = TARGETS.get((op, metric))
            o = [getattr(s, metric) for s in ours]
            g = [getattr(s, metric) for s in go]
            ratio = statistics.median(a / b for a, b in zip(o, g) if b > 0)
            if metric == "rss_mb":
                goal = f"≤ {RSS_TARGET_MB:.0f} MB: {'met' if max(o) <= RSS_TARGET_MB else 'MISSED'}"
            elif target:
                goal = f"≤ {target:.1f}×: {'met' if ratio <= target else 'MISSED'}"
            else:
                goal = ""
            lines.append(f"| {op} | {unit} | {fmt(o)} | {fmt(g)} | {ratio:.2f}× | {goal} |")
    return lines


def importtime_profile(ours: Path, pod: str, work: str, rebuild: bool, runs: int = 7) -> list[str]:
    """Build the bundle once more with `-X importtime` and read what an ADD imports, frozen.

    Each module's self time is the minimum over `runs` ADDs: on a shared machine that is the honest cost."""
    out = ROOT / "build" / "bench-importtime"
    exe, main_exe = out / "cni-rdma" / "cni-rdma", ours.resolve() / "macvlan"
    if rebuild or not exe.exists() or exe.stat().st_mtime < main_exe.resolve().stat().st_mtime:
        env = dict(os.environ, CNI_RDMA_IMPORTTIME="1")
        p = subprocess.run([sys.executable, str(ROOT / "tools" / "build_bundle.py"), "--out", str(out)],
                           env=env, capture_output=True, text=True)
        if p.returncode != 0:
            return [f"(importtime build failed: {p.stderr.strip()[-500:]})"]
    b = Bench(out / "frozen-bin", GO_DIR, work)
    best: dict[str, list[int]] = {}
    for i in range(runs):
        c = conf("prof", 0, os.path.join(work, "prof"))
        _, _, err = run(b.dirs["ours"] / "macvlan", "ADD", b.env("ours", f"prof{i}", "net1", pod), c)
        run(b.dirs["ours"] / "macvlan", "DEL", b.env("ours", f"prof{i}", "net1", pod), c)
        for line in err.decode().splitlines():
            if not line.startswith("import time:") or "self [us]" in line:
                continue
            self_us, cum_us, name = line[len("import time:"):].split("|", 2)
            depth = (len(name) - len(name.lstrip(" ")) - 1) // 2
            key = f"{depth}:{name.strip()}"
            prev = best.get(key)
            best[key] = [min(prev[0], int(self_us)), min(prev[1], int(cum_us))] if prev else [int(self_us), int(cum_us)]
    if not best:
        return ["(no importtime output)"]
    rows = [(v[0], v[1], int(k.split(":", 1)[0]), k.split(":", 1)[1]) for k, v in best.items()]
    total = sum(r[0] for r in rows)
    ours_self = sum(r[0] for r in rows if r[3].split(".")[0] in ("cni_rdma", "plugins", "ipam"))
    top_level = sorted((r for r in rows if r[2] == 0), key=lambda r: -r[1])[:10]
    by_self = sorted(rows, key=lambda r: -r[0])[:12]
    lines = [f"Imports of one frozen macvlan ADD (minimum over {runs} ADDs per module): {total / 1e3:.1f} ms of "
             f"self time over {len(rows)} modules, of which our own modules {ours_self / 1e3:.1f} ms.", "",
             "| top-level import | cumulative ms |", "|---|---|"]
    lines += [f"| `{r[3]}` | {r[1] / 1e3:.1f} |" for r in top_level]
    lines += ["", "| module (by self time) | self ms | cumulative ms |", "|---|---|---|"]
    lines += [f"| `{r[3]}` | {r[0] / 1e3:.1f} | {r[1] / 1e3:.1f} |" for r in by_self]
    return lines


FLOOR_NAMES = {
    "go": "Go macvlan VERSION",
    "c": "a C program (`/bin/true`: exec + ld.so)",
    "python": "`python3 -I -S -c pass` (the interpreter the bundle freezes, not frozen)",
    "frozen-empty": "the frozen empty app (our launcher, this bundle, runs nothing)",
    "frozen-imports": "the frozen empty app + the imports of a macvlan + host-local DEL (no work)",
    "frozen-imports-add": "the frozen empty app + the imports of a macvlan + host-local ADD (no work)",
    "ours": "our VERSION (frozen)",
}


def floor_table(floors: dict[str, list[Sample]]) -> list[str]:
    """Start-up floors beside Go's VERSION, from the same rounds: what no Python plugin here can beat."""
    go = floors["go"]
    if not go:
        return []
    lines = ["Start-up floors (same VERSION rounds, interleaved):", "",
             "| process | wall ms median | CPU ms median | × Go VERSION (wall, median of per-round) |",
             "|---|---|---|---|"]
    for name, label in FLOOR_NAMES.items():
        xs = floors.get(name) or []
        if not xs:
            continue
        ratio = statistics.median(a.wall_ms / b.wall_ms for a, b in zip(xs, go) if b.wall_ms > 0)
        lines.append(f"| {label} | {statistics.median(x.wall_ms for x in xs):.1f} | "
                     f"{statistics.median(x.cpu_ms for x in xs):.1f} | {ratio:.2f}× |")
    if floors.get("frozen-empty") and floors["ours"]:
        above = statistics.median(a.cpu_ms - b.cpu_ms for a, b in zip(floors["ours"], floors["frozen-empty"]))
        lines += ["", f"Our VERSION costs {above:.1f} ms CPU above the frozen empty app (median of per-round "
                  "differences): the imports of cni_rdma.main, registry, early, errors and version."]
    return lines


def kernel_table(results: dict[str, Series], kernel: dict[str, list[tuple[Sample, float]]]) -> list[str]:
    """The DEL's wall beside the kernel's own delete of the same link (bench/dellink.c, after each plugin's ADD)."""
    if not kernel["ours"] or not kernel["go"]:
        return []
    med = statistics.median

    def dels(impl: str) -> float:
        return med(x.wall_ms for x in results["DEL"].samples[impl])

    procs = {impl: med(s.wall_ms for s, _ in xs) for impl, xs in kernel.items()}
    sends = {impl: med(k for _, k in xs) for impl, xs in kernel.items()}
    return ["## The kernel's share of a DEL's wall time", "",
            "bench/dellink.c, a C program that only enters the pod netns and deletes the link with one RTM_DELLINK, "
            f"run after each plugin's ADD ({len(kernel['ours'])} rounds each, after the timed rounds; the plugin's "
            "DEL then releases the address). Inside that one request the kernel unregisters the device: three "
            "expedited RCU grace periods, then netdev_run_todo's rcu_barrier(), which waits for a normal grace "
            "period (bench/README.md, round 7). Every DEL of a macvlan waits for it, in any language.", "",
            "| wall ms, median | after our ADD | after Go's ADD |", "|---|---|---|",
            f"| the plugin's DEL (the DEL rows above) | {dels('ours'):.1f} | {dels('go'):.1f} |",
            f"| the C program's whole delete (exec to exit) | {procs['ours']:.1f} | {procs['go']:.1f} |",
            f"| of which the RTM_DELLINK request | {sends['ours']:.1f} | {sends['go']:.1f} |",
            f"| the plugin's DEL above the C program's delete | {dels('ours') - procs['ours']:.1f} | "
            f"{dels('go') - procs['go']:.1f} |", "",
            f"A DEL that cost nothing but the kernel's delete would be {procs['ours'] / dels('go'):.2f}× Go's DEL "
            "wall here; ours is the row above that.", ""]


def summary(results: dict[str, Series], ours: Path, floors: dict[str, list[Sample]] | None = None) -> list[str]:
    """Where our time goes, from the table's own medians (CPU: robust on a shared machine)."""
    def med(op: str, impl: str, metric: str = "cpu_ms") -> float:
        xs = [getattr(x, metric) for x in results[op].samples[impl]]
        return statistics.median(xs) if xs else float("nan")

    bundle = ours.resolve() / "macvlan"
    top = bundle.resolve().parent
    size = sum(f.stat().st_size for f in top.rglob("*") if f.is_file() and not f.is_symlink())
    out = [f"Bundle: {top} ({sum(1 for f in top.rglob('*') if f.is_file())} files, {size / 1e6:.1f} MB); "
           f"peak RSS of our VERSION {med('VERSION', 'ours', 'rss_mb'):.1f} MB."]
    if results["ADD"].samples["ours"]:
        start, add, dele = med("VERSION", "ours"), med("ADD", "ours"), med("DEL", "ours")
        out.append(f"Start-up: our VERSION (interpreter + imports, no work) costs {start:.1f} ms CPU, "
                   f"{100 * start / add:.0f}% of our ADD ({add:.1f} ms) and {100 * start / dele:.0f}% of our DEL "
                   f"({dele:.1f} ms); Go's whole ADD, IPAM exec included, costs {med('ADD', 'go'):.1f} ms.")
        empty = floors.get("frozen-empty") if floors else None
        if empty:
            f = statistics.median(x.cpu_ms for x in empty)
            fi = {op: statistics.median(x.cpu_ms for x in xs) if (xs := (floors or {}).get(name)) else float("nan")
                  for op, name in (("ADD", "frozen-imports-add"), ("DEL", "frozen-imports"))}
            out += ["", "What the floors leave (CPU, medians of this run): the frozen empty app costs "
                    f"{f:.1f} ms before any line of ours runs; with the imports of a macvlan + host-local ADD "
                    f"(and no work) {fi['ADD']:.1f} ms, of a DEL {fi['DEL']:.1f} ms.", "",
                    "| operation | Go CPU ms | target × | budget ms | empty app, × Go | empty app + imports, × Go "
                    "| ours above the empty app + imports (the work) ms |", "|---|---|---|---|---|---|---|"]
            for op in ("ADD", "DEL"):
                go, target = med(op, "go"), TARGETS[(op, "cpu_ms")]
                out.append(f"| {op} | {go:.1f} | {target:.1f}× | {go * target:.1f} | {f / go:.2f}× | "
                           f"{fi[op] / go:.2f}× | {med(op, 'ours') - fi[op]:.1f} |")
    return out + [""]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="cni-rdma (frozen) vs Go containernetworking-plugins")
    ap.add_argument("--rounds", type=int, default=30, help="interleaved rounds of VERSION, ADD, DEL")
    ap.add_argument("--rail-rounds", type=int, default=8, help="rounds of the 8-attachment pod")
    ap.add_argument("--dual-rounds", type=int, default=5, help="rounds of the dual-stack ADD (Go's take ~2 s)")
    ap.add_argument("--ours", type=Path, default=ROOT / "build" / "frozen-bin")
    ap.add_argument("--go", type=Path, default=GO_DIR)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results.md")
    ap.add_argument("--version-only", action="store_true", help="only the VERSION start-up rounds")
    ap.add_argument("--no-profile", action="store_true", help="skip the -X importtime build and profile")
    ap.add_argument("--rebuild-profile", action="store_true", help="rebuild the importtime variant")
    args = ap.parse_args(argv)
    if os.geteuid() != 0:
        print("bench: needs root (network namespaces)", file=sys.stderr)
        return 1
    build_spawn()
    for d in (args.ours, args.go):
        if not (d / "macvlan").exists():
            print(f"bench: no macvlan in {d} (make build; apt install containernetworking-plugins)", file=sys.stderr)
            return 1

    # ADD/DEL only once both of our plugins load (they may still be being written).
    probe = [subprocess.run([str(args.ours / t)], env={"CNI_COMMAND": "VERSION"}, capture_output=True).returncode
             for t in ("macvlan", "host-local")]
    with_add = probe == [0, 0] and not args.version_only

    node = topology.make_node(default_route=False)
    pod = topology.make_pod()
    work = tempfile.mkdtemp(prefix="cni-rdma-bench-")
    results = {op: Series() for op in ("VERSION", "ADD", "DEL", "8-rail ADD", "8-rail DEL", "dual-stack ADD")}
    kernel: dict[str, list[tuple[Sample, float]]] = {"ours": [], "go": []}
    floor_exe = build_floor(args.ours)
    imports_exe = build_floor(args.ours, ("CNI_RDMA_IMPORTS_FLOOR",), "imports-floor")
    imports_add_exe = build_floor(args.ours, ("CNI_RDMA_IMPORTS_FLOOR", "CNI_RDMA_IMPORTS_FLOOR_ADD"),
                                  "imports-floor-add")
    # Start-up floors, measured in the same VERSION rounds: exec of a C program, the bare interpreter the
    # bundle freezes (not frozen), the frozen empty app (our launcher running nothing), and the empty app
    # plus the imports of a macvlan + host-local DEL, then ADD (no work).
    floors: dict[str, list[Sample]] = {"go": [], "c": [], "python": [], "frozen-empty": [], "frozen-imports": [],
                                       "frozen-imports-add": [], "ours": []}
    floor_cmds = [("c", Path("/bin/true"), ()), ("python", Path(os.path.realpath(sys.executable)),
                                                ("-I", "-S", "-c", "pass"))]
    if floor_exe is not None:
        floor_cmds.append(("frozen-empty", floor_exe, ()))
    if imports_exe is not None:
        floor_cmds.append(("frozen-imports", imports_exe, ()))
    if imports_add_exe is not None:
        floor_cmds.append(("frozen-imports-add", imports_add_exe, ()))
    order = ["ours", "go"]
    try:
        for r in range(1, RAILS):
            topology.sh("ip", "-n", node.name, "link", "add", f"eth{r}", "type", "veth", "peer", "name", f"peer{r}")
            topology.sh("ip", "-n", node.name, "link", "set", f"eth{r}", "up")
        setns(node.path)  # this process is the "node": plugins inherit its netns, as under kubelet
        b = Bench(args.ours.resolve(), args.go.resolve(), work)
        for impl in order:  # warm the page cache and both IPAM stores; not recorded
            b.version(impl)
            if with_add:
                b.add_del(impl, f"warm-{impl}", pod.path)
        t0 = time.monotonic()
        for i in range(args.rounds):
            for name, exe, extra in floor_cmds:
                floors[name].append(run(exe, "VERSION", {}, args=extra)[0])
            for impl in (order if i % 2 == 0 else order[::-1]):
                results["VERSION"].samples[impl].append(b.version(impl))
                floors[impl].append(results["VERSION"].samples[impl][-1])
                if with_add:
                    a, d = b.add_del(impl, f"r{i}-{impl}", pod.path)
                    results["ADD"].samples[impl].append(a)
                    results["DEL"].samples[impl].append(d)
        for i in range(args.rail_rounds if with_add else 0):
            for impl in (order if i % 2 == 0 else order[::-1]):
                a, d = b.rails(impl, f"rail{i}-{impl}", pod.path)
                results["8-rail ADD"].samples[impl].append(a)
                results["8-rail DEL"].samples[impl].append(d)
        for i in range(args.dual_rounds if with_add else 0):
            for impl in (order if i % 2 == 0 else order[::-1]):
                results["dual-stack ADD"].samples[impl].append(b.dual(impl, f"dual{i}-{impl}", pod.path))
        for i in range(args.rounds if with_add else 0):  # after the timed rounds: they stay as they were
            for impl in (order if i % 2 == 0 else order[::-1]):
                kernel[impl].append(b.kernel_delete(impl, f"kdel{i}-{impl}", pod.path))
        elapsed = time.monotonic() - t0
        profile = [] if args.no_profile or not with_add else importtime_profile(args.ours, pod.path, work,
                                                                                args.rebuild_profile)
    finally:
        topology.netns_del(pod.name)
        topology.netns_del(node.name)
        shutil.rmtree(work, ignore_errors=True)


    lines = ["# cni-rdma vs Go reference plugins", "", *machine(),
             f"- rounds: {args.rounds} interleaved (VERSION, ADD, DEL), {args.rail_rounds if with_add else 0} "
             f"of the {RAILS}-rail pod, {args.dual_rounds if with_add else 0} dual-stack; {elapsed:.0f} s; "
             "order alternates every round", ""]
    if not with_add:
        lines += ["ADD/DEL not measured: our macvlan or host-local does not load yet.", ""]
    lines += table(results)
    lines += ["", *floor_table(floors), ""]
    lines += summary(results, args.ours, floors)
    lines += kernel_table(results, kernel)
    if profile:
        lines += ["## What an ADD imports inside the frozen app (`-X importtime`)", "", *profile, ""]
    text = "\n".join(lines) + "\n"
    sys.stdout.write(text)
    args.out.write_text(text)
    print(f"written to {os.path.relpath(args.out)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
