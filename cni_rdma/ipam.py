"""IPAM delegation (SPEC.md "Delegated plugin protocol"), in-process when the IPAM type is ours.

Exec'ing our own IPAM as a second process costs 26-34 ms, so when the executable found in CNI_PATH
resolves to this very bundle, its code is called in-process with the same env and stdin instead.
"""
from __future__ import annotations

import posix
import sys

TYPE_CHECKING = False  # annotations only: importing typing costs ~2 ms on every plugin call
if TYPE_CHECKING:
    from typing import Optional

from . import jsonc, paths
from .errors import DECODE_FAILURE, INTERNAL, INVALID_CONFIG, CniError
from .registry import PLUGINS, load
from .skel import Request
from .types import Result


def find_in_path(plugin: str, dirs: tuple[str, ...]) -> str:
    """Go's invoke.FindInPath: a bare name, looked up in each CNI_PATH entry in order."""
    if not plugin:
        raise CniError(INVALID_CONFIG, 'invalid "ipam.type": empty plugin name')
    if paths.SEP in plugin:
        raise CniError(INVALID_CONFIG, f'invalid "ipam.type": invalid plugin name: {plugin}')
    if not dirs:
        raise CniError(INVALID_CONFIG, f"no paths provided to find plugin {plugin!r} (CNI_PATH is empty)")
    for d in dirs:
        candidate = paths.join(d, plugin)
        if paths.isfile(candidate) and posix.access(candidate, posix.X_OK):
            return candidate
    raise CniError(INVALID_CONFIG, f"failed to find plugin {plugin!r} in path {list(dirs)}")


def _own_entry() -> str:
    exe = sys.executable if getattr(sys, "frozen", False) else sys.argv[0]
    return paths.resolved(exe) if exe else ""


def _in_process_module(plugin: str, exe: str) -> Optional[str]:
    if plugin not in PLUGINS or paths.getenv("CNI_RDMA_NO_INPROCESS_IPAM"):
        return None
    own = _own_entry()
    return PLUGINS[plugin] if own and paths.resolved(exe) == own else None


def delegate(req: Request, command: str) -> Optional[Result]:
    """Run the configured IPAM plugin for `command` with req's env and stdin; ADD returns its result."""
    plugin = req.conf.ipam_type
    exe = find_in_path(plugin, req.path)
    module = _in_process_module(plugin, exe)
    env = dict(req.env)
    env["CNI_COMMAND"] = command
    if module is not None:
        from . import skel

        return skel.call(load(module), env, req.stdin, outer=req)
    return _exec(exe, plugin, env, req, command)


def _exec(exe: str, plugin: str, env: dict, req: Request, command: str) -> Optional[Result]:
    returncode, stdout, stderr = run_captured(exe, req.stdin, env)
    if stderr:
        sys.stderr.write(stderr.decode(errors="replace"))
    if returncode != 0:
        raise _plugin_error(plugin, returncode, stdout, stderr)
    if command != "ADD":
        return None
    try:
        out = jsonc.loads(stdout)
    except ValueError as e:
        raise CniError(DECODE_FAILURE, f"failed to parse the result of IPAM plugin {plugin!r}", str(e)) from None
    return Result.from_json(out, req.conf.cni_version, f"result of IPAM plugin {plugin!r}")


def run_captured(exe: str, stdin: bytes, env: dict) -> tuple[int, bytes, bytes]:
    """subprocess.run([exe], input=stdin, env=env, stdout=PIPE, stderr=PIPE): (returncode, stdout, stderr), the
    returncode -N for a child killed by signal N; OSError when exe cannot be run. Without subprocess, which
    imports signal, enum, threading, selectors, contextlib, locale and re (~10 ms before the delegate even
    starts): posix_spawn on three pipes, SIGPIPE and SIGXFSZ back to default in the child as subprocess
    does, stdin written and both outputs read through poll so a chatty or a non-reading child cannot
    deadlock us."""
    import _signal
    import select  # the C module

    fds: list[int] = []  # ours to close
    try:
        in_r, in_w = posix.pipe()
        out_r, out_w = posix.pipe()
        err_r, err_w = posix.pipe()
        fds += [in_r, in_w, out_r, out_w, err_r, err_w]
        pid = posix.posix_spawn(exe, [exe], env, setsigdef=(_signal.SIGPIPE, _signal.SIGXFSZ), file_actions=[
            (posix.POSIX_SPAWN_DUP2, in_r, 0), (posix.POSIX_SPAWN_DUP2, out_w, 1), (posix.POSIX_SPAWN_DUP2, err_w, 2)])
        for fd in (in_r, out_w, err_w):  # the child's ends
            posix.close(fd)
            fds.remove(fd)
        outputs: dict[int, list[bytes]] = {out_r: [], err_r: []}
        poller = select.poll()
        for fd in outputs:
            poller.register(fd, select.POLLIN)
        todo = memoryview(stdin)
        if todo:
            poller.register(in_w, select.POLLOUT)
        else:
            posix.close(in_w)
            fds.remove(in_w)
        while len(fds) > 0:
            for fd, _ in poller.poll():
                if fd == in_w:
                    try:
                        todo = todo[posix.write(in_w, todo[:select.PIPE_BUF]):]  # PIPE_BUF: never blocks after POLLOUT
                    except BrokenPipeError:  # the child exited without reading it all, as subprocess allows
                        todo = todo[:0]
                    if not todo:
                        poller.unregister(in_w)
                        posix.close(in_w)
                        fds.remove(in_w)
                    continue
                chunk = posix.read(fd, 65536)
                if chunk:
                    outputs[fd].append(chunk)
                else:  # EOF: the child (and anything it spawned) closed it
                    poller.unregister(fd)
                    posix.close(fd)
                    fds.remove(fd)
    finally:
        for fd in fds:
            posix.close(fd)
    _, status = posix.waitpid(pid, 0)
    return posix.waitstatus_to_exitcode(status), b"".join(outputs[out_r]), b"".join(outputs[err_r])


def _plugin_error(plugin: str, rc: int, stdout: bytes, stderr: bytes) -> CniError:
    # Go's invoke pluginErr: the delegate's own error JSON if it printed one, else what it said.
    if not stdout.strip():
        if not stderr.strip():
            return CniError(INTERNAL, f"netplugin failed with no error message: exit status {rc}")
        return CniError(INTERNAL, f"netplugin failed: {stderr.decode(errors='replace').strip()!r}")
    try:
        err = jsonc.loads(stdout)
        return CniError(int(err.get("code", INTERNAL)), str(err.get("msg", "")), str(err.get("details", "") or ""))
    except (ValueError, AttributeError, TypeError) as e:
        return CniError(INTERNAL, f"netplugin failed but error parsing its diagnostic message {stdout[:200]!r}: {e}")


def add(req: Request) -> Result:
    result = delegate(req, "ADD")
    assert result is not None
    return result


def delete(req: Request) -> None:
    delegate(req, "DEL")


def check(req: Request) -> None:
    delegate(req, "CHECK")


def status(req: Request) -> None:
    delegate(req, "STATUS")


def gc(req: Request) -> None:
    delegate(req, "GC")


def allocated(req: Request) -> Allocated:
    """`with allocated(req) as result:` IPAM ADD whose allocation is released again (IPAM DEL) if the block
    raises: a failed ADD leaks nothing."""
    return Allocated(req)


class Allocated:
    """allocated()'s `with` block. (A class rather than contextlib.contextmanager: contextlib pulls in
    collections and functools, ~5 ms of every plugin call.)"""

    def __init__(self, req: Request) -> None:
        self.req = req

    def __enter__(self) -> Result:
        return add(self.req)

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is not None:
            try:
                delete(self.req)
            except Exception:
                pass
