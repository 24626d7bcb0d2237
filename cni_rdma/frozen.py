"""The base of the hot path's typed records: plain annotated classes with __slots__ instead of dataclasses.

A dataclass costs its module (dataclasses, with inspect behind it: 13-15 ms of a frozen plugin's start) and
~0.5 ms per class created at import; these cost nothing measurable. Each record lists its fields in __slots__
and annotates them, and writes a typed __init__ (so mypy checks every construction) that ends in
`self._init(locals())`. This base gives what frozen dataclasses gave: no assignment after __init__, equality
and hash over the fields, a dataclass-style repr, and `replace(**changes)` for dataclasses.replace.
"""

TYPE_CHECKING = False  # annotations only: importing typing costs ~2 ms on every plugin call
if TYPE_CHECKING:
    from typing import Self


class Frozen:
    """Immutable record over its __slots__ (see the module docstring)."""

    __slots__: tuple[str, ...] = ()

    def _init(self, values: dict) -> None:
        # values: the __init__'s locals(); every field is a parameter of the same name
        for name in self.__slots__:
            object.__setattr__(self, name, values[name])

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"cannot assign to field {name!r}: {type(self).__name__} is immutable")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"cannot delete field {name!r}: {type(self).__name__} is immutable")

    def _fields(self) -> tuple:
        return tuple(getattr(self, name) for name in self.__slots__)

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return self._fields() == other._fields()

    def __hash__(self) -> int:
        return hash(self._fields())

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.__slots__)
        return f"{type(self).__qualname__}({fields})"

    def replace(self, **changes: object) -> "Self":
        """A copy with some fields changed (dataclasses.replace)."""
        values = {name: getattr(self, name) for name in self.__slots__}
        values.update(changes)
        return type(self)(**values)
