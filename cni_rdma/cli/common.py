"""Shared by the CLI's commands: its error type and exit codes, safe reads of config files, output helpers."""
from __future__ import annotations

import json
import os
import sys
from typing import Any, Optional

import click

# Exit codes scripts can rely on (README "Operating it").
EXIT_OK = 0
EXIT_FAILED = 1  # a check failed, a plugin returned an error, an operation did not complete
EXIT_USAGE = 2  # bad flags or bad input (unknown network, missing netns, unreadable config): click's own code
EXIT_WARN = 3  # `doctor --strict`: only warnings

MAX_CONF_BYTES = 1 << 20
DEFAULT_CONF_DIR = "/etc/cni/net.d"
DEFAULT_BIN_DIR = "/opt/cni/bin"
DEFAULT_STATE_ROOT = "/var/lib/cni"
DEFAULT_IPAM_DIR = "/var/lib/cni/networks"


class CliError(click.ClickException):
    """A one-line error for the operator; `code` is the exit status."""

    def __init__(self, message: str, code: int = EXIT_USAGE):
        super().__init__(message)
        self.exit_code = code


def one_line(text: Any) -> str:
    """Untrusted text (file names, plugin messages) on one line, control characters escaped."""
    s = str(text)
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in s)


def read_file(path: str, limit: int = MAX_CONF_BYTES) -> bytes:
    """A regular file's bytes, never following a final symlink, never blocking (FIFO), bounded (safefile)."""
    from cni_rdma import safefile

    try:
        return safefile.read(path, limit)
    except OSError as e:
        raise CliError(f"cannot read {one_line(path)}: {one_line(safefile.describe(e))}") from None


def read_json(path: str) -> Any:
    data = read_file(path)
    try:
        return json.loads(data)
    except (ValueError, RecursionError) as e:
        raise CliError(f"{one_line(path)}: invalid JSON: {one_line(str(e).splitlines()[0])}") from None


def list_dir(path: str) -> list[str]:
    try:
        return sorted(os.listdir(path))
    except FileNotFoundError:
        return []
    except OSError as e:
        raise CliError(f"cannot list {one_line(path)}: {e.strerror or e}") from None


def emit_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, sort_keys=False))


def table(rows: list[list[Any]], headers: list[str]) -> str:
    """A plain aligned text table ("-" for empty cells)."""
    cells = [[_cell(c) for c in r] for r in rows]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]
    lines = ["  ".join(h.upper().ljust(w) for h, w in zip(headers, widths)).rstrip()]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in cells]
    return "\n".join(lines)


def _cell(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        value = ", ".join(str(v) for v in value)
    return one_line(value) if value not in (None, "") else "-"


def netns_alive(path: Optional[str]) -> bool:
    """The path names a live network namespace (an nsfs bind mount or /proc/<pid>/ns/net)."""
    if not path:
        return False
    try:
        return os.stat(path).st_dev == os.stat("/proc/self/ns/net").st_dev
    except OSError:
        return False


def warn(msg: str) -> None:
    sys.stderr.write(f"cni-rdma: warning: {one_line(msg)}\n")
