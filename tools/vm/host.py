"""Host-side helpers for the VM runner: messages, commands, apt, the cache lock.

Standard library only: the runner must work from a fresh clone before any venv exists.
"""
from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

QUIET = False


class VmError(Exception):
    """Setup or boot failed (not the guest command): the runner exits 125."""


def info(msg: str) -> None:
    if not QUIET:
        print(f"vm: {msg}", file=sys.stderr, flush=True)


def warn(msg: str) -> None:
    print(f"vm: warning: {msg}", file=sys.stderr, flush=True)


def run(cmd: list[str], *, cwd: Path | None = None, log: Path | None = None, env: dict | None = None) -> str:
    """Run a command; return stdout. On failure raise VmError with the end of its output."""
    p = subprocess.run(cmd, cwd=cwd, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True)
    if log is not None:
        log.write_text(p.stdout + p.stderr)
    if p.returncode != 0:
        tail = "\n".join((p.stdout + p.stderr).strip().splitlines()[-20:])
        raise VmError(f"{' '.join(cmd)} failed ({p.returncode}):\n{tail}")
    return p.stdout


def pipeline(cmds: list[list[str]], *, cwd: Path) -> None:
    """cmds[0] | cmds[1] | ...; raise VmError if any stage fails."""
    procs: list[subprocess.Popen] = []
    prev = subprocess.DEVNULL
    for i, cmd in enumerate(cmds):
        last = i == len(cmds) - 1
        p = subprocess.Popen(cmd, cwd=cwd, stdin=prev, stdout=None if last else subprocess.PIPE,
                             stderr=subprocess.PIPE)
        if prev is not subprocess.DEVNULL:
            prev.close()  # the next stage owns the read end now
        prev = p.stdout
        procs.append(p)
    errors = []
    for cmd, p in zip(cmds, procs):
        err = p.stderr.read().decode(errors="replace")
        if p.wait() != 0:
            errors.append(f"{' '.join(cmd)} ({p.returncode}): {err.strip()[-500:]}")
    if errors:
        raise VmError("pipeline failed:\n" + "\n".join(errors))


def as_root(cmd: list[str]) -> list[str]:
    if os.geteuid() == 0:
        return cmd
    if shutil.which("sudo"):
        return ["sudo", *cmd]
    raise VmError(f"need root (or sudo) for: {' '.join(cmd)}")


def installed(pkg: str) -> bool:
    p = subprocess.run(["dpkg-query", "-W", "-f=${Status}", pkg], capture_output=True, text=True)
    return p.returncode == 0 and "ok installed" in p.stdout


_apt_updated = False


def apt_update() -> None:
    global _apt_updated
    if not _apt_updated:
        info("apt-get update")
        run(as_root(["apt-get", "update", "-q"]))
        _apt_updated = True


def _apt_env() -> dict:
    return {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}


def apt_install(pkgs: list[str]) -> None:
    """Install the packages that are not installed yet (running apt-get update once if needed)."""
    need = [p for p in dict.fromkeys(pkgs) if not installed(p)]
    if not need:
        return
    info(f"installing host packages: {' '.join(need)}")
    cmd = as_root(["apt-get", "install", "-y", "-q", "--no-install-recommends", *need])
    try:
        run(cmd, env=_apt_env())
    except VmError:
        apt_update()
        run(cmd, env=_apt_env())


def apt_download(specs: list[str], dest: Path) -> list[Path]:
    """`apt-get download` pkg[=version]... into dest (nothing is installed); return the .deb files."""
    dest.chmod(0o755)  # lets apt's _apt user write there (root downloads anyway, with a warning)
    try:
        run(["apt-get", "download", *specs], cwd=dest)
    except VmError:
        apt_update()
        run(["apt-get", "download", *specs], cwd=dest)
    return sorted(dest.glob("*.deb"))


def apt_field(spec: str, field: str) -> str:
    """One field of `apt-cache show pkg[=version]` (the candidate when no version is given)."""
    for attempt in (1, 2):
        p = subprocess.run(["apt-cache", "show", "--no-all-versions", spec], capture_output=True, text=True)
        if p.returncode == 0 and p.stdout.strip():
            break
        if attempt == 1:
            apt_update()
    else:
        raise VmError(f"apt does not know {spec}")
    value, in_field = [], False
    for line in p.stdout.splitlines():
        if line.startswith(f"{field}:"):
            value.append(line.split(":", 1)[1].strip())
            in_field = True
        elif in_field and line.startswith(" "):
            value.append(line.strip())
        elif in_field:
            break
    return " ".join(value)


def depends(spec: str) -> list[str]:
    """Package names in the Depends field of spec (alternatives: the first one)."""
    out = []
    for dep in apt_field(spec, "Depends").split(","):
        name = dep.split("|")[0].strip().split(" ")[0]
        if name:
            out.append(name.split(":")[0])
    return out


@contextmanager
def locked(path: Path):
    """An exclusive flock: concurrent first runs (several engineers, make -j) set up the cache once."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)
