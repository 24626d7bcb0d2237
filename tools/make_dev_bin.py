"""Create build/dev-bin: one launcher running the source tree, and a symlink per plugin type.

Tests run plugins as real processes from CNI_TEST_BIN_DIR exactly as kubelet would; the frozen
bundle later provides the same names, so one suite covers both.
"""
from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from cni_rdma.registry import PLUGINS  # noqa: E402

LAUNCHER = """#!{python} -IS
# cni-rdma dev launcher: runs the source tree at {root}; dispatches on argv[0].
import sys
sys.path.insert(0, {root!r})
from cni_rdma.main import run
run()
"""


def main() -> None:
    out = ROOT / "build" / "dev-bin"
    out.mkdir(parents=True, exist_ok=True)
    launcher = out / "cni-rdma"
    tmp = launcher.with_suffix(".tmp")
    tmp.write_text(LAUNCHER.format(python=sys.executable, root=str(ROOT)))
    tmp.chmod(0o755)
    tmp.replace(launcher)
    for name in PLUGINS:
        link = out / name
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to("cni-rdma")
    print(f"dev launchers in {out}: {', '.join(sorted(PLUGINS))}")


if __name__ == "__main__":
    main()
