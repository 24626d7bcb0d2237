"""The frozen bundle's Python modules, imported from one file: `_internal/cni_rdma.modules`.

Frozen, each module a plugin imports (~45 on an ADD) was a stat, an open, an fstat and a read of its own .pyc
through the path finder, ~0.1 ms each: about a quarter of an ADD's import time (bench/README.md).
tools/build_bundle.py packs every .pyc of the bundle into one file (an index, then the code objects as their
.pyc files hold them); `install()` reads the index once and puts a finder first on sys.meta_path that reads
and runs a module's code on import (one pread). Imports keep their meaning: lazy stays lazy, `__file__` and
`__path__` are what the loose files gave (they stay in the bundle: the interpreter's own start-up and any
module imported before `install()` use them).

Format (all integers little-endian): MAGIC, the interpreter's 4-byte .pyc magic, the index's length (4 bytes),
the index (marshal: a tuple of (name, is_package, offset, size)), then the code objects; offsets count from
the end of the index.
"""
import marshal
import posix
import sys

FILE_NAME = "cni_rdma.modules"
MAGIC = b"cni-rdma modules\n"
# A dotted built-in module (tools/launcher.c links cni_rdma/_native.c into the executable): the interpreter's
# BuiltinImporter only answers for top-level names, so this finder does for ours.
BUILTIN = "cni_rdma._native"


class BundledModules:
    """Finder and loader over the modules file (one per process; see the module docstring)."""

    def __init__(self, root: str, fd: int, index: dict, base: int) -> None:
        self.root = root  # the bundle's _internal directory
        self.fd = fd  # kept open (close-on-exec) for the process's life: imports can come at any time
        self.index = index  # name -> (is_package, offset, size)
        self.base = base
        self.machinery = sys.modules["_frozen_importlib"]

    def find_spec(self, name, path=None, target=None):
        entry = self.index.get(name)
        if entry is None:
            if name == BUILTIN and name in sys.builtin_module_names:
                return self.machinery.ModuleSpec(name, self.machinery.BuiltinImporter, origin="built-in")
            return None
        base = f"{self.root}/{name.replace('.', '/')}"
        spec = self.machinery.ModuleSpec(name, self, origin=f"{base}/__init__.pyc" if entry[0] else f"{base}.pyc",
                                         is_package=entry[0])
        spec.has_location = True  # __file__ = origin, as the loose .pyc gave it
        if entry[0]:
            spec.submodule_search_locations.append(base)  # extension modules of a package are still files
        return spec

    def create_module(self, spec):
        return None  # the default module object

    def exec_module(self, module) -> None:
        _, offset, size = self.index[module.__spec__.name]
        data = posix.pread(self.fd, size, self.base + offset)
        if len(data) != size:
            raise ImportError(f"{FILE_NAME}: {module.__spec__.name} is truncated", name=module.__spec__.name)
        exec(marshal.loads(data), module.__dict__)

    def get_source(self, name):  # linecache asks (tracebacks): the bundle holds no sources
        return None


def install() -> bool:
    """Serve imports from the modules file when running frozen and the bundle has one; True if installed.

    Idempotent. A file of another interpreter (its .pyc magic differs) or a corrupt one raises ImportError:
    the caller turns it into a CNI error (a broken install must still answer)."""
    root = getattr(sys, "_MEIPASS", None)
    if not getattr(sys, "frozen", False) or root is None:
        return False
    if any(isinstance(f, BundledModules) for f in sys.meta_path):
        return True
    try:
        fd = posix.open(f"{root}/{FILE_NAME}", posix.O_RDONLY | posix.O_CLOEXEC | posix.O_NOFOLLOW)
    except FileNotFoundError:
        return False  # a bundle built before the modules file: the loose .pyc files serve
    head = posix.pread(fd, len(MAGIC) + 8, 0)
    pyc_magic = sys.modules["_frozen_importlib_external"].MAGIC_NUMBER
    if head[:len(MAGIC)] != MAGIC or head[len(MAGIC):len(MAGIC) + 4] != pyc_magic:
        posix.close(fd)
        raise ImportError(f"{root}/{FILE_NAME} is not a modules file of this interpreter")
    size = int.from_bytes(head[len(MAGIC) + 4:], "little")
    start = len(MAGIC) + 8
    raw = posix.pread(fd, size, start)
    index = {name: (is_package, offset, length) for name, is_package, offset, length in marshal.loads(raw)}
    sys.meta_path.insert(0, BundledModules(root, fd, index, start + size))
    return True
