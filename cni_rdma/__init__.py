"""cni-rdma: CNI plugins for RDMA networking in Kubernetes pods."""
import sys as _sys

# Start-up is every CNI call's latency. dataclasses imports inspect (with ast, dis, tokenize: ~10 ms, a
# fifth of a frozen plugin's start) only to write a __doc__ for dataclasses that lack one; ours all have
# docstrings (tests/unit/test_startup.py), so a stand-in takes inspect's place until its first real use.
# (importlib.util.LazyLoader does not help: `import inspect` itself touches __spec__ and loads it.)


class _Deferred(type(_sys)):  # type: ignore[misc]  # types.ModuleType, without importing types
    """A module placeholder that imports the real module, and becomes it, on its first attribute use."""

    def __getattr__(self, attr: str):
        name = self.__name__
        if _sys.modules.get(name) is self:
            del _sys.modules[name]
        real = __import__(name)
        self.__dict__.update(real.__dict__)
        return getattr(real, attr)


if "inspect" not in _sys.modules:
    _sys.modules["inspect"] = _Deferred("inspect")
