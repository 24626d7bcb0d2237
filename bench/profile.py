"""Where a frozen call's CPU goes: one callgrind run per call, its cost split into phases. Writes bench/profile.md.

Rerun after `make build`: `.venv/bin/python bench/profile.py` (as root: it makes two throwaway netns).
1. Builds the bundle's launcher (tools/launcher.c, linked as tools/build_bundle.py links it) unstripped and with -g
   into build/profile/: the plugin launcher, and the CNI_RDMA_FLOOR variant (the empty app: the interpreter's start
   and nothing else). Both load the bundle's own glibc and _internal, as bench/bench.py's floor build does.
2. Runs each call once under `valgrind --tool=callgrind --cache-sim=yes`: the empty app, VERSION, and a macvlan +
   host-local ADD and DEL (from a node netns with a veth `eth0` into a pod netns; both deleted at the end, even on
   a failure). Callgrind dumps a first part when the launcher calls cni_rdma_run_main (`--dump-before`), so
   the second part is exactly our code, the threads it starts included.
3. Splits the cost with `callgrind_annotate --inclusive=yes` (`phases`) and counts the classes created (calls of
   type_new) and the module bodies run (calls of builtin_exec) in each part.
Callgrind counts, it does not time: a busy machine changes nothing. Totals repeat within ~0.2% run to run (the
interpreter draws a new hash seed at every start, and dict and set work follows it).
"""
from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from tools.build_bundle import launcher_command  # noqa: E402

BUNDLE = ROOT / "build" / "cni-rdma"
OUT = ROOT / "build" / "profile"
REPORT = ROOT / "bench" / "profile.md"
CALLS = ("empty", "VERSION", "ADD", "DEL")
# The cache simulation's events. CEst, the cycle estimate, weighs them as cachegrind's documentation and
# KCachegrind do: Ir + 10 x (L1 misses) + 100 x (last-level misses).
EVENTS = ("Ir", "I1mr", "D1mr", "D1mw", "ILmr", "DLmr", "DLmw")
L1_MISSES = ("I1mr", "D1mr", "D1mw")
LL_MISSES = ("ILmr", "DLmr", "DLmw")
# The launcher's one call into our Python code: cni_rdma_run_main for a plugin call, PyRun_SimpleStringFlags for the
# empty app (CNI_RDMA_FLOOR)
OURS = ("cni_rdma_run_main", "PyRun_SimpleStringFlags")
UNMARSHAL = ("marshal_loads", "PyMarshal_ReadObjectFromString")
CLASSES = "builtin___build_class__"
COUNTED = ("type_new", "builtin_exec")

Costs = list[int]  # one number per EVENTS


def sh(*cmd: str) -> str:
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        raise SystemExit(f"profile: {cmd[0]} failed ({p.returncode}): {p.stderr.strip()[-500:]}")
    return p.stdout


def conf(data_dir: Path) -> str:
    """The network config of the ADD and DEL: macvlan on the node's eth0, host-local in-process."""
    return json.dumps({"cniVersion": "1.0.0", "name": "profile", "type": "macvlan", "master": "eth0", "mode": "bridge",
                       "ipam": {"type": "host-local", "dataDir": str(data_dir), "routes": [{"dst": "0.0.0.0/0"}],
                                "ranges": [[{"subnet": "10.89.0.0/16", "gateway": "10.89.0.1"}]]}})


def build_launchers() -> dict[str, Path]:
    """Step 1: build/profile/{app,empty}/cni-rdma, unstripped, with -g, each beside a symlink to the bundle's
    _internal and loading the bundle's own glibc (its ELF interpreter); app/ has the plugin names (argv[0])."""
    internal = BUNDLE / "_internal"
    interp = sh("patchelf", "--print-interpreter", str(BUNDLE / "cni-rdma")).strip()
    if OUT.exists():
        shutil.rmtree(OUT)
    exes = {}
    for name, defines in (("app", ()), ("empty", ("CNI_RDMA_FLOOR",))):
        out_dir = OUT / name
        out_dir.mkdir(parents=True)
        (out_dir / "_internal").symlink_to(internal)
        exe = out_dir / "cni-rdma"
        cmd = launcher_command(exe, internal, defines, rpath=f"{internal / 'lib'}:{internal}")
        sh(*(arg for arg in cmd if arg != "-s"), "-g", f"-Wl,--dynamic-linker={interp}")
        exes[name] = exe
    for plugin in ("macvlan", "host-local"):
        (OUT / "app" / plugin).symlink_to("cni-rdma")
    exes["plugin"] = OUT / "app" / "macvlan"
    return exes


@contextlib.contextmanager
def netns_pair() -> Iterator[tuple[str, str]]:
    """A node netns with a veth `eth0` (macvlan's master) and an empty pod netns, named for this process; both go
    on the way out, whatever happened."""
    made = []
    try:
        for ns in (f"prof{os.getpid()}n", f"prof{os.getpid()}p"):
            sh("ip", "netns", "add", ns)
            made.append(ns)
        sh("ip", "-n", made[0], "link", "add", "eth0", "type", "veth", "peer", "name", "eth0p")
        sh("ip", "-n", made[0], "link", "set", "eth0", "up")
        yield made[0], made[1]
    finally:
        for ns in made:
            subprocess.run(["ip", "netns", "delete", ns], check=False)


def callgrind(exe: Path, out: Path, env: dict[str, str], stdin: str = "", netns: str = "") -> str:
    """Step 2: one call of `exe` under callgrind; its stdout. Writes `out`.1 (up to our code) and `out` (our code)."""
    cmd = ["valgrind", "--tool=callgrind", "--cache-sim=yes", *(f"--dump-before={name}" for name in OURS),
           f"--callgrind-out-file={out}", "-q", str(exe)]
    if netns:
        cmd = ["ip", "netns", "exec", netns, *cmd]
    p = subprocess.run(cmd, input=stdin, capture_output=True, text=True,
                       env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", **env})
    if p.returncode != 0:
        stderr = [line for line in p.stderr.splitlines() if not re.match(r"(==|--)\d+(==|--)", line)]
        raise SystemExit(f"profile: {exe.name} {env.get('CNI_COMMAND', '')} failed ({p.returncode}): "
                         f"{p.stdout.strip()} {' '.join(stderr)[-500:]}")
    return p.stdout


def run_calls(exes: dict[str, Path], work: Path) -> dict[str, Path]:
    """The four calls, each its callgrind output: the empty app, VERSION, ADD, and the DEL that undoes it."""
    outs = {call: work / f"callgrind.{call}.out" for call in CALLS}
    callgrind(exes["empty"], outs["empty"], {})
    json.loads(callgrind(exes["plugin"], outs["VERSION"], {"CNI_COMMAND": "VERSION"}))
    stdin = conf(work / "ipam")
    with netns_pair() as (node, pod):
        env = {"CNI_CONTAINERID": f"profile{os.getpid()}", "CNI_NETNS": f"/run/netns/{pod}", "CNI_IFNAME": "net1",
               "CNI_PATH": str(exes["plugin"].parent)}
        result = json.loads(callgrind(exes["plugin"], outs["ADD"], {**env, "CNI_COMMAND": "ADD"}, stdin, node))
        if not result.get("ips"):
            raise SystemExit(f"profile: the ADD gave no address: {result}")
        callgrind(exes["plugin"], outs["DEL"], {**env, "CNI_COMMAND": "DEL"}, stdin, node)
    return outs


def inclusive_costs(out: Path) -> tuple[dict[str, Costs], Costs]:
    """Step 3: callgrind_annotate --inclusive=yes of one part: function -> its costs, and the part's total.
    A function shows once per source file its code comes from (inlined headers): the entry its callers call holds
    all of it, the largest. Compiler suffixes go (pyinit_core.constprop.0); a recursive call (fn'2) stays apart,
    so the plain name is the outermost calls only and nothing counts twice."""
    text = sh("callgrind_annotate", "--inclusive=yes", "--threshold=100", f"--show={','.join(EVENTS)}", str(out))
    number = r"([\d,]+|\.)(?: \([\d. ]+%\))?"
    line_re = re.compile(r"\s*" + r"\s+".join([number] * len(EVENTS)) + r"\s+(.*)$")
    costs: dict[str, Costs] = {}
    total = None
    for line in text.splitlines():
        m = line_re.match(line)
        if not m:
            continue
        values = [0 if v == "." else int(v.replace(",", "")) for v in m.groups()[:len(EVENTS)]]
        what = m.group(len(EVENTS) + 1)
        if what.startswith("PROGRAM TOTALS"):
            total = values
            continue
        fn = re.sub(r"\.(constprop|isra|part|cold)\.\d+", "", what.split(" [", 1)[0].rsplit(":", 1)[-1])
        if values[0] > costs.get(fn, [-1])[0]:
            costs[fn] = values
    if total is None:
        raise SystemExit(f"profile: no PROGRAM TOTALS in callgrind_annotate of {out}")
    return costs, total


def call_counts(out: Path) -> dict[str, int]:
    """How often each COUNTED function was called in one part (recursive calls too), from its call lines."""
    names: dict[str, str] = {}  # callgrind's name compression: "(12) name" once, "(12)" after
    counts = dict.fromkeys(COUNTED, 0)
    callee = ""
    with open(out) as f:
        for line in f:
            if m := re.match(r"c?fn=(?:\((\d+)\))? ?(.*)", line.rstrip("\n")):
                if m.group(1) and m.group(2):
                    names[m.group(1)] = m.group(2)
                if line.startswith("cfn="):
                    callee = (names.get(m.group(1), "") if m.group(1) else m.group(2)).split("'")[0]
            elif line.startswith("calls=") and callee in counts:
                counts[callee] += int(line[6:].split()[0])
    return counts


def add(*parts: Costs) -> Costs:
    return [sum(values) for values in zip(*parts)]


def sub(a: Costs, *bs: Costs) -> Costs:
    return [x - y for x, y in zip(a, add(*bs))]


def phases(out: Path) -> list[tuple[str, Costs]]:
    """The rows (an indented row is a part of the row above it), from the two parts of one call's output."""
    start_costs, start_total = inclusive_costs(Path(f"{out}.1"))
    ours_costs, ours_total = inclusive_costs(out)
    nothing = [0] * len(EVENTS)

    def start(fn: str) -> Costs:
        return start_costs.get(fn, nothing)

    def ours(*fns: str) -> Costs:
        return add(nothing, *(ours_costs.get(fn, nothing) for fn in fns))

    interp = add(start("Py_InitializeFromConfig"), start("_Py_InitializeMain"))
    unmarshal, classes = ours(*UNMARSHAL), ours(CLASSES)
    return [("process total", add(start_total, ours_total)),
            ("before main: ld.so (load, relocate), libc start", sub(start_total, start("main"))),
            ("interpreter start: Py_InitializeFromConfig + _Py_InitializeMain", interp),
            ("  core: pyinit_core", start("pyinit_core")),
            ("  main part: init_interp_main", start("init_interp_main")),
            ("launcher's own: pre-init, config, paths", sub(start("main"), interp)),
            (f"our code: {OURS[0]} (the empty app: {OURS[1]}) on (its threads too)", ours_total),
            ("  unmarshal: marshal_loads + PyMarshal_ReadObjectFromString", unmarshal),
            (f"  class creation: {CLASSES}", classes),
            ("  the rest: module bodies, the command's work", sub(ours_total, unmarshal, classes))]


def cest(costs: Costs) -> int:
    ev = dict(zip(EVENTS, costs))
    return ev["Ir"] + 10 * sum(ev[e] for e in L1_MISSES) + 100 * sum(ev[e] for e in LL_MISSES)


def table(metric: str, profiles: dict[str, list[tuple[str, Costs]]]) -> list[str]:
    """A markdown table, a row per phase and a column per call: `metric` (Ir or CEst) in millions and its share of
    that call's process total."""
    value = (lambda costs: costs[0]) if metric == "Ir" else cest
    lines = [f"| {metric} | " + " | ".join(profiles) + " |", "|---|" + "---:|" * len(profiles)]
    for row, (label, _) in enumerate(profiles[CALLS[0]]):
        cells = [f"{value(rows[row][1]) / 1e6:.2f}M ({100 * value(rows[row][1]) / value(rows[0][1]):.1f}%)"
                 for rows in profiles.values()]
        lines.append(f"| {label.replace('  ', '&nbsp;&nbsp;&nbsp;', 1)} | " + " | ".join(cells) + " |")
    return lines


def count_table(counts: dict[str, dict[str, dict[str, int]]]) -> list[str]:
    lines = ["| calls of | " + " | ".join(counts) + " |", "|---|" + "---:|" * len(counts)]
    for fn, what in (("type_new", "classes created"), ("builtin_exec", "module bodies run")):
        for part, where in (("start", "before our code"), ("ours", "in our code")):
            lines.append(f"| {fn} ({what} {where}) | " + " | ".join(f"{c[part][fn]:,}" for c in counts.values())
                         + " |")
    return lines


def findings(profiles: dict[str, list[tuple[str, Costs]]], counts: dict[str, dict[str, dict[str, int]]]) -> list[str]:
    """What the tables show, in sentences made from this run's numbers."""
    def costs(call: str, label: str) -> Costs:
        return next(c for name, c in profiles[call] if name.startswith(label))

    def ir(call: str, label: str) -> float:
        return costs(call, label)[0] / 1e6

    def pct(part: float, whole: float) -> str:
        return f"{100 * part / whole:.0f}%"

    total, ours = ir("DEL", "process total"), ir("DEL", "our code")
    unmarshal, classes = ir("DEL", "  unmarshal"), ir("DEL", "  class creation")
    made, runs = counts["DEL"]["ours"]["type_new"], counts["DEL"]["ours"]["builtin_exec"]
    loader, whole = costs("DEL", "before main"), costs("DEL", "process total")
    ll = EVENTS.index("DLmr"), EVENTS.index("DLmw"), EVENTS.index("ILmr")
    return [
        f"- The empty app (the interpreter's start, no line of ours) executes {ir('empty', 'process total'):.2f}M "
        f"instructions, {pct(ir('empty', 'process total'), total)} of a DEL's {total:.2f}M. In the DEL, the "
        f"interpreter's own start is {pct(ir('DEL', 'interpreter start'), total)} (its core phase "
        f"{pct(ir('DEL', '  core'), total)}, its main part {pct(ir('DEL', '  main part'), total)}) and the "
        f"loader before main {pct(ir('DEL', 'before main'), total)}.",
        f"- Our code is {ours:.2f}M instructions of the DEL ({pct(ours, total)}). Of that, unmarshalling (code "
        f"objects, and the modules file's index) is {pct(unmarshal, ours)} and creating classes "
        f"{pct(classes, ours)} (class bodies included): "
        f"{pct(unmarshal + classes, ours)} of our part. The rest, {pct(ours - unmarshal - classes, ours)}, is "
        "the module bodies' other statements and the command's own work (config, netlink, IPAM).",
        f"- Our part of a DEL runs {runs} module bodies and creates {made} classes "
        f"({classes * 1e3 / made:.0f}k instructions a class, its body included); an ADD's "
        f"{counts['ADD']['ours']['builtin_exec']} and {counts['ADD']['ours']['type_new']}. The interpreter's "
        f"start creates {counts['DEL']['start']['type_new']} classes of its own.",
        f"- With cache misses weighed in (CEst) the loader's share of the DEL grows from "
        f"{pct(loader[0], whole[0])} to {pct(cest(loader), cest(whole))}: it executes few instructions but has "
        f"{pct(sum(loader[i] for i in ll), sum(whole[i] for i in ll))} of the DEL's last-level cache misses.",
    ]


def report(commit: str, profiles: dict[str, list[tuple[str, Costs]]],
           counts: dict[str, dict[str, dict[str, int]]]) -> list[str]:
    return [
        "# Where a frozen call's CPU goes (callgrind)", "",
        f"Code measured: {commit}. Written by `bench/profile.py`. Rerun after `make build`, as root: "
        "`.venv/bin/python bench/profile.py` (about 20 s). Callgrind counts, it does not time, so a busy machine "
        "changes nothing; totals repeat within ~0.2% run to run (the interpreter draws a new hash seed at every "
        "start).", "",
        "One call each under `valgrind --tool=callgrind --cache-sim=yes`, with the bundle's launcher rebuilt "
        "unstripped in build/profile/ (same link, the bundle's own glibc and _internal): the empty app "
        "(`CNI_RDMA_FLOOR`: the interpreter's start, then `posix._exit`), VERSION, and a macvlan + host-local "
        "ADD and DEL in throwaway netns. Costs are callgrind_annotate's inclusive costs; callgrind dumps a first "
        "part when the launcher calls `cni_rdma_run_main` (the empty app: `PyRun_SimpleStringFlags`), so `our "
        "code` is everything from there on, the "
        "netns thread included. Indented rows are parts of the row above them. Ir: instructions executed. CEst: "
        "the cachegrind/KCachegrind cycle estimate, Ir + 10 x L1 misses + 100 x last-level misses "
        "(I1mr+D1mr+D1mw, ILmr+DLmr+DLmw), with callgrind's simulated caches.", "",
        "The parts of our code do not overlap: a plain name is its outermost calls only (callgrind names a nested "
        "call fn'2), and no import runs inside a class body in these calls (checked at d8133a4 with "
        "`--collect-atstart=no --toggle-collect=builtin___build_class__` on the ADD and the DEL: neither "
        "marshal_loads nor PyMarshal_ReadObjectFromString under it).", "",
        *table("Ir", profiles), "", *table("CEst", profiles), "", *count_table(counts), "",
        "## What it shows", "", *findings(profiles, counts), "",
    ]


def main() -> int:
    if not (BUNDLE / "cni-rdma").is_file():
        raise SystemExit("profile: no bundle in build/cni-rdma: run `make build` first")
    # The code measured: the last commit outside bench/ (a commit of bench/ alone changes no figure here)
    git, outside_bench = ("git", "-C", str(ROOT)), ("--", ".", ":(exclude)bench")
    commit = sh(*git, "log", "-1", "--format=%h", *outside_bench).strip()
    if sh(*git, "status", "--porcelain", *outside_bench).strip():
        commit += " (with uncommitted changes)"
    exes = build_launchers()
    work = OUT / "callgrind"
    work.mkdir()
    outs = run_calls(exes, work)
    profiles = {call: phases(out) for call, out in outs.items()}
    counts = {call: {"start": call_counts(Path(f"{out}.1")), "ours": call_counts(out)} for call, out in outs.items()}
    lines = report(commit, profiles, counts)
    REPORT.write_text("\n".join(lines))
    print("\n".join(lines))
    print(f"profile: wrote {REPORT.relative_to(ROOT)}; callgrind outputs in {work.relative_to(ROOT)}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
