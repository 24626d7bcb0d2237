"""The one exception type of the project: a CNI error carrying its code (SPEC.md "Error")."""

# Well-known codes, CNI SPEC 1.1.0 section "Error".
INCOMPATIBLE_VERSION = 1
UNSUPPORTED_FIELD = 2
UNKNOWN_CONTAINER = 3
INVALID_ENV = 4
IO_FAILURE = 5
DECODE_FAILURE = 6
INVALID_CONFIG = 7
TRY_AGAIN_LATER = 11
NOT_AVAILABLE = 50
LIMITED_CONNECTIVITY = 51
# Plugin-specific codes start at 100.
PLUGIN = 100
# What an unexpected exception becomes: never a traceback on stdout/stderr.
INTERNAL = 999


class CniError(Exception):
    """A CNI error result (SPEC.md "Error"): printed as {"code", "msg", "details"} on stdout, exit 1."""

    # A plain class, not a dataclass: the netlink layer imports this and must stay cheap to start.
    def __init__(self, code: int, msg: str, details: str = ""):
        super().__init__(msg)
        self.code = code
        self.msg = msg
        self.details = details

    def __repr__(self) -> str:
        return f"{type(self).__name__}(code={self.code!r}, msg={self.msg!r}, details={self.details!r})"

    def __str__(self) -> str:
        return f"{self.msg}: {self.details}" if self.details else self.msg

    def to_json(self, cni_version: str) -> dict:
        out = {"cniVersion": cni_version, "code": self.code, "msg": self.msg}
        if self.details:
            out["details"] = self.details
        return out


def config_error(field: str, problem: str) -> CniError:
    """Code 7 with a message that names the offending field, as every bad-input path must."""
    return CniError(INVALID_CONFIG, f'invalid "{field}": {problem}')
