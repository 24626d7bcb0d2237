"""Opt-in file logging via the `logFile` / `logLevel` config keys (as sriov-cni); off by default.

stdout is reserved for the CNI result and stderr for warnings, so diagnostics go to the file only.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass

LEVELS = {"panic": 0, "error": 1, "warning": 2, "info": 3, "debug": 4}


@dataclass(frozen=True)
class Logger:
    """Appends lines to the config's logFile at or above logLevel; without a logFile it writes nothing."""

    path: str = ""
    level: int = LEVELS["info"]
    prefix: str = ""

    @classmethod
    def from_conf(cls, raw: dict, prefix: str) -> "Logger":
        path = raw.get("logFile") if isinstance(raw, dict) else None
        level = raw.get("logLevel", "info") if isinstance(raw, dict) else "info"
        if not isinstance(path, str) or not path:
            return cls(prefix=prefix)
        return cls(path, LEVELS.get(str(level).lower(), LEVELS["info"]), prefix)

    def _write(self, level: str, msg: str) -> None:
        if not self.path or LEVELS[level] > self.level:
            return
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime())
        line = f"{stamp}Z {level.upper()} {self.prefix} {msg}\n"
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
            try:
                os.write(fd, line.encode(errors="replace"))
            finally:
                os.close(fd)
        except OSError:
            pass  # logging must never turn a working call into a failure

    def error(self, msg: str) -> None:
        self._write("error", msg)

    def warning(self, msg: str) -> None:
        self._write("warning", msg)

    def info(self, msg: str) -> None:
        self._write("info", msg)

    def debug(self, msg: str) -> None:
        self._write("debug", msg)
