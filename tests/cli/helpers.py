"""Run the `cni-rdma` CLI as a real process (dev launcher or frozen bundle, from CNI_TEST_BIN_DIR)."""
from __future__ import annotations

import json
import os
import subprocess
from typing import Any, Optional

from tests import topology


class Run:
    def __init__(self, p: subprocess.CompletedProcess):
        self.code, self.stdout, self.stderr = p.returncode, p.stdout, p.stderr

    @property
    def json(self) -> Any:
        return json.loads(self.stdout)

    def __repr__(self) -> str:
        return f"<exit {self.code}\nstdout: {self.stdout}\nstderr: {self.stderr}>"


def cli_path() -> str:
    # the executable every plugin name links to: build/dev-bin/cni-rdma or the frozen bundle's cni-rdma
    return os.path.realpath(topology.bin_dir() / "macvlan")


def cli(*args: str, env: Optional[dict] = None, input: Optional[str] = None, timeout: float = 120) -> Run:
    full = dict(os.environ)
    full.pop("CNI_COMMAND", None)
    full.update(env or {})
    p = subprocess.run([cli_path(), *args], capture_output=True, text=True, env=full, input=input, timeout=timeout)
    return Run(p)


def assert_one_line_error(r: Run, code: int = 2, *needles: str) -> None:
    assert r.code == code, r
    assert "Traceback" not in r.stderr, r
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r
    for n in needles:
        assert n in lines[0], r
