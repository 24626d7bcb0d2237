"""The frozen bundle's Python modules, imported from one file: `_internal/cni_rdma.modules`.

Frozen, each module a plugin imports (~45 on an ADD) was a stat, an open, an fstat and a read of its own .pyc
through the path finder, ~0.1 ms each: about a quarter of an ADD's import time (bench/README.md).
tools/build_bundle.py packs every .pyc of the bundle into one file (an index, then the code objects as their
.pyc files hold them); `install()` reads the index once and puts a finder first on sys.meta_path that reads
and runs a module's code on import (one pread). Imports keep their meaning: lazy stays lazy, `__file__` and
`__path__` are what the loose files gave (they stay in the bundle for the modules imported before
`install()`: tools/launcher.c freezes this module into the executable and installs it before cni_rdma.main).

`preload(name)` (registry.load, before a plugin or in-process IPAM module is imported) goes one step further:
the file lists, for each registry module, the modules its import runs, dependencies first (recorded by the
build); they are run in that order without the import machinery (its locks, spec search and attribute setup
cost ~25 us a module, ~1 ms a call). Any import those modules make that is not done yet still goes through
the machinery, so the result is the same modules, the same attributes, in the same sys.modules.
`preload(name, command)` (cni_rdma.skel, before the plugin's function for that command) runs what the module's
COMMAND_IMPORTS (the modules add() or check() import inside the function, off a DEL's path) run after it.

The bundle's extension modules (`_json`, `_struct`... in python3.X/lib-dynload) are found from the index too:
the path finder would list that directory and stat it on every call (~0.2 ms per module, half of what
importing one costs); the spec is the one it would make.

In the bundle, the modules this finder runs are of `cni_rdma._native.Module`: the module type with the generic
attribute lookup, so that `from x import y` probing x for `__path__` (is it a package?) raises nothing; the
standard type words two AttributeErrors for it, ~9k instructions, ~100 times a call. A module that defines a
module-level `__getattr__` (PEP 562, which only the standard lookup calls) gets the standard type back.

The index is in two parts: the modules a plugin call may import (the preload entries and what importing
cni_rdma.main runs), read by install(), and the rest of the bundle's ~360 modules (the operator CLI's, the
stdlib's), read only when a name is not in the first: unmarshalling the whole index cost every call ~0.5M
instructions.

Format (all integers little-endian): MAGIC, the interpreter's 4-byte .pyc magic, the first part's length (4
bytes), the first part (marshal: a 4-tuple of a dict module name -> (is_package, offset, size), a dict registry
module -> tuple of module names, and (registry module, command) -> tuple of module names, a dict extension module
name -> its file's path under the bundle's _internal directory, and the second part's length), the second part
(marshal: a dict as the first one), then the code objects; offsets count from the end of the second part.
"""
import marshal
import posix
import sys

FILE_NAME = "cni_rdma.modules"
MAGIC = b"cni-rdma modules\n"
# A dotted built-in module (tools/launcher.c links cni_rdma/_native.c into the executable): the interpreter's
# BuiltinImporter only answers for top-level names, so this finder does for ours.
BUILTIN = "cni_rdma._native"
ModuleType = type(sys)


class BundledModules:
    """Finder and loader over the modules file (one per process; see the module docstring)."""

    def __init__(self, root: str, fd: int, index: dict, preloads: dict, base: int, extensions: dict,
                 rest: tuple[int, int] | None) -> None:
        self.root = root  # the bundle's _internal directory
        self.fd = fd  # kept open (close-on-exec) for the process's life: imports can come at any time
        self.index = index  # name -> (is_package, offset, size): a plugin call's modules, then all
        self.preloads = preloads  # registry module (and (module, command)) -> the modules it runs, dependencies first
        self.base = base
        self.extensions = extensions  # top-level extension module name -> its file, relative to root
        self.rest = rest  # (file offset, size) of the index's second part until it is read
        self.module_type = ModuleType  # _native.Module once install() has imported it
        self.machinery = sys.modules["_frozen_importlib"]

    def find_spec(self, name, path=None, target=None):
        entry = self.index.get(name)
        if entry is None:
            if name in sys.builtin_module_names:
                if name == BUILTIN:
                    return self.machinery.ModuleSpec(name, self.machinery.BuiltinImporter, origin="built-in")
                return None  # never in the file: no need to read the rest of the index
            extension = self.extensions.get(name) if path is None else None
            if extension is not None:  # as the path finder's FileFinder makes it, without listing the directory
                external = sys.modules["_frozen_importlib_external"]
                location = f"{self.root}/{extension}"
                return external.spec_from_file_location(name, location,
                                                        loader=external.ExtensionFileLoader(name, location))
            if self.rest is None:
                return None
            offset, size = self.rest
            self.rest = None
            self.index.update(marshal.loads(posix.pread(self.fd, size, offset)))
            entry = self.index.get(name)
            if entry is None:
                return None
        return self._spec(name, entry[0])

    def _spec(self, name: str, is_package: bool):
        base = f"{self.root}/{name.replace('.', '/')}"
        spec = self.machinery.ModuleSpec(name, self, origin=f"{base}/__init__.pyc" if is_package else f"{base}.pyc",
                                         is_package=is_package)
        spec.has_location = True  # __file__ = origin, as the loose .pyc gave it
        if is_package:
            spec.submodule_search_locations.append(base)  # extension modules of a package are still files
        return spec

    def create_module(self, spec):
        return self.module_type(spec.name)  # set up by the import system as the default module would be

    def exec_module(self, module) -> None:
        _, offset, size = self.index[module.__spec__.name]
        data = posix.pread(self.fd, size, self.base + offset)
        if len(data) != size:
            raise ImportError(f"{FILE_NAME}: {module.__spec__.name} is truncated", name=module.__spec__.name)
        exec(marshal.loads(data), module.__dict__)
        if "__getattr__" in module.__dict__ and type(module) is not ModuleType:
            module.__class__ = ModuleType  # PEP 562's module __getattr__ needs the standard type's lookup

    def get_source(self, name):  # linecache asks (tracebacks): the bundle holds no sources
        return None

    def preload(self, name: str, command: str | None = None) -> None:
        """Run the modules importing `name` (then its COMMAND_IMPORTS of `command`) would run, in the recorded
        order, as the import system would."""
        modules = sys.modules
        for mod_name in self.preloads.get(name if command is None else (name, command), ()):
            if mod_name in modules or mod_name not in self.index:
                continue  # done already, or not ours (an extension module): left to its import
            parent, _, child = mod_name.rpartition(".")
            if parent and parent not in modules:
                # A package runs before its modules (it finishes after those its __init__ imports): as the
                # import system does, through it.
                __import__(parent)
                if mod_name in modules:
                    continue
            spec = self._spec(mod_name, self.index[mod_name][0])
            module = self.module_type(mod_name)
            # the attributes importlib's module_from_spec sets for a module with a location
            attrs = module.__dict__
            attrs.update(__spec__=spec, __loader__=self, __file__=spec.origin, __cached__=spec.origin)
            if spec.submodule_search_locations is not None:
                attrs.update(__path__=spec.submodule_search_locations, __package__=mod_name)
            else:
                attrs["__package__"] = parent
            modules[mod_name] = module
            try:
                self.exec_module(module)
            except BaseException:
                del modules[mod_name]  # as a failed import: nothing half-run stays importable
                raise
            if parent:
                setattr(modules[parent], child, module)


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
    index, preloads, extensions, rest = marshal.loads(posix.pread(fd, size, start))
    finder = BundledModules(root, fd, index, preloads, start + size + rest, extensions,
                            (start + size, rest) if rest else None)
    sys.meta_path.insert(0, finder)
    if BUILTIN in sys.builtin_module_names:  # the executable's: its module type (see cni_rdma/_native.c)
        from . import _native

        finder.module_type = getattr(_native, "Module", ModuleType)
    return True


def preload(name: str, command: str | None = None) -> None:
    """Frozen, with the modules file installed: run what importing `name` (a registry module) runs, or with a
    command what its COMMAND_IMPORTS for it run after that, without the import machinery (see the module
    docstring). Otherwise nothing: the import does it all."""
    for finder in sys.meta_path:
        if isinstance(finder, BundledModules):
            finder.preload(name, command)
            return
