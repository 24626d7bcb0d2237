#!/usr/bin/env python3
"""`make install` / `make uninstall`: a thin wrapper over cni_rdma/installer.py (the same code the frozen
bundle runs as `cni-rdma install …`). Standard library only; Python >= 3.8."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from cni_rdma.installer import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:], prog="tools/install.py"))
