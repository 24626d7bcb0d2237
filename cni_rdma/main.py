"""Entry point of the single executable: dispatch on the name it was invoked as (argv[0])."""
from __future__ import annotations

import importlib
import os
import sys

from .registry import PLUGINS


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv if argv is None else argv
    name = os.path.basename(argv[0])
    if len(argv) > 1 and argv[1] == "--version":
        from .version import print_build_version
        return print_build_version(name)
    module = PLUGINS.get(name)
    if module is None:
        sys.stderr.write(f"cni-rdma: invoked as {name!r}; install it under one of: {', '.join(sorted(PLUGINS))}\n")
        return 1
    from . import skel
    return skel.run(importlib.import_module(module))


if __name__ == "__main__":
    sys.exit(main())
