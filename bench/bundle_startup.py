"""Start-up of the self-contained bundle (own glibc, issue 19) against the same sources frozen the old way
(the node's glibc: `tools/build_bundle.py --host-glibc`), interleaved, each a real process via bench/spawn.c.

    .venv/bin/python bench/bundle_startup.py [--rounds 40]     # needs cc; builds both variants if missing

VERSION only: it is pure start-up (bootloader, its re-exec, loader, interpreter, imports), where the bundled
loader and libc would show. Prints min/median of wall and CPU ms, the median per-round ratio, and both
bundle sizes. Not a test: reported, never asserted.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench import build_spawn, run  # noqa: E402  (bench/bench.py: this directory is sys.path[0])

VARIANTS = {"host-glibc": ROOT / "build" / "bench-hostglibc", "self-contained": ROOT / "build"}


def size(top: Path) -> int:
    return sum(p.lstat().st_size for p in top.rglob("*") if not p.is_dir())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=40)
    ap.add_argument("--rebuild", action="store_true", help="rebuild both variants first")
    args = ap.parse_args(argv)
    build_spawn()
    for name, out in VARIANTS.items():
        if args.rebuild or not (out / "frozen-bin" / "macvlan").exists():
            extra = ["--host-glibc"] if name == "host-glibc" else []
            subprocess.run([sys.executable, str(ROOT / "tools" / "build_bundle.py"), "--out", str(out), *extra],
                           check=True, stdout=subprocess.DEVNULL)
    samples: dict[str, list] = {name: [] for name in VARIANTS}
    order = list(VARIANTS)
    for i in range(args.rounds):
        for name in (order if i % 2 == 0 else order[::-1]):
            s, out, _ = run(VARIANTS[name] / "frozen-bin" / "macvlan", "VERSION", {})
            assert b"supportedVersions" in out
            samples[name].append(s)
    print(f"VERSION, {args.rounds} interleaved rounds; load average {os.getloadavg()[0]:.1f}")
    print(f"{'bundle':16} {'wall min':>9} {'wall med':>9} {'cpu min':>8} {'cpu med':>8} {'rss MB':>7} {'size MB':>8}")
    for name, xs in samples.items():
        wall, cpu = [x.wall_ms for x in xs], [x.cpu_ms for x in xs]
        print(f"{name:16} {min(wall):9.1f} {statistics.median(wall):9.1f} {min(cpu):8.1f} "
              f"{statistics.median(cpu):8.1f} {statistics.median(x.rss_mb for x in xs):7.1f} "
              f"{size(VARIANTS[name] / 'cni-rdma') / 1e6:8.1f}")
    a, b = samples["self-contained"], samples["host-glibc"]
    for metric in ("wall_ms", "cpu_ms"):
        ratio = statistics.median(getattr(x, metric) / getattr(y, metric) for x, y in zip(a, b))
        print(f"self-contained / host-glibc, median per-round {metric}: {ratio:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
