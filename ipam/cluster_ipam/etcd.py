"""A small etcd v3 client over the server's JSON gateway (`/v3/kv/range`, `/v3/kv/txn`), HTTP/1.1 on a socket.

Why not a library: a plugin is a new process per CNI call, so the client's import cost is paid on every ADD.
`import http.client` costs ~40 ms in a plugin process here (it pulls in email.* and urllib), PyPI's `etcd3`
(gRPC) and `etcd3gw` (requests) far more (bench/etcd_client.md); this client needs _socket + binascii +
cni_rdma.jsonc, which the plugins already import, and `ssl` (with socket) only when an endpoint is https.

Bound: every socket operation times out after min(request timeout, time left before the call's deadline).
An endpoint that refuses, resets, times out or answers "no leader" is skipped for the next one; rounds over
all endpoints repeat (short backoff) until the deadline, then `Unreachable` names every endpoint and why.
Keys and values are bytes on the wire as base64, revisions as decimal strings (the gateway's proto3 JSON).
"""
from __future__ import annotations

import _socket  # the C module: socket.py pulls in enum and selectors (~6 ms of every call)
import binascii
import posix
import time

TYPE_CHECKING = False  # annotations only: importing typing costs ~2 ms on every plugin call
if TYPE_CHECKING:
    from typing import Any, Optional

from cni_rdma import jsonc

MAX_RESPONSE = 64 << 20     # a pool listing of ~100k records fits; a runaway answer does not
RETRYABLE_GRPC = {1, 4, 8, 10, 13, 14}  # cancelled, deadline, resource exhausted, aborted, internal, unavailable
# An endpoint is (https?)://(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.\-]+):([0-9]{1,5})/? (fullmatch), checked with string
# operations: re costs ~5 ms to import.
_BRACKETED_HOST = frozenset("0123456789abcdefABCDEF:.")
_NAMED_HOST = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-")
_DIGITS = frozenset("0123456789")


class EtcdError(Exception):
    """Root of this layer's errors: the plugin turns them into CNI errors."""


class Unreachable(EtcdError):
    """No endpoint answered before the deadline; `tried` holds (endpoint, last reason) for each."""

    def __init__(self, tried: list[tuple[str, str]], waited: float):
        self.tried = tried
        self.waited = waited
        super().__init__("etcd unreachable after %.1f s: %s" % (waited, "; ".join(f"{e} ({r})" for e, r in tried)))


class Refused(EtcdError):
    """etcd answered with a non-retryable error (bad credentials, permission, malformed request)."""

    def __init__(self, endpoint: str, grpc_code: int, message: str):
        self.endpoint = endpoint
        self.grpc_code = grpc_code
        super().__init__(f"etcd {endpoint} refused the request: {message} (gRPC code {grpc_code})")


class Endpoint:
    __slots__ = ("url", "tls", "host", "port")

    def __init__(self, url: str, tls: bool, host: str, port: int):
        self.url = url
        self.tls = tls
        self.host = host
        self.port = port


def parse_endpoint(text: str) -> Optional[Endpoint]:
    """http(s)://host:port -> Endpoint, or None when it is not one (the caller names the key)."""
    scheme, sep, rest = text.partition("://")
    if scheme not in ("http", "https") or not sep:
        return None
    host, colon, port = (rest[:-1] if rest.endswith("/") else rest).rpartition(":")
    if not colon or not 1 <= len(port) <= 5 or not _DIGITS.issuperset(port) or not 0 < int(port) < 65536:
        return None
    if host[:1] == "[" and host[-1:] == "]" and len(host) > 2 and _BRACKETED_HOST.issuperset(host[1:-1]):
        pass
    elif not host or not _NAMED_HOST.issuperset(host):
        return None
    return Endpoint(text.rstrip("/"), scheme == "https", host.strip("[]"), int(port))


class KV:
    """One key as read: value None means the key does not exist (mod_revision 0, as etcd compares it)."""

    __slots__ = ("key", "value", "mod_revision", "create_revision")

    def __init__(self, key: bytes, value: Optional[bytes], mod_revision: int = 0, create_revision: int = 0):
        self.key = key
        self.value = value
        self.mod_revision = mod_revision
        self.create_revision = create_revision


def b64(data: bytes) -> str:
    return binascii.b2a_base64(data, newline=False).decode()


def unb64(text: str) -> bytes:
    return binascii.a2b_base64(text)


def prefix_end(prefix: bytes) -> bytes:
    """The range_end that makes a range cover every key starting with prefix."""
    p = bytearray(prefix)
    while p and p[-1] == 0xFF:
        p.pop()
    p[-1] += 1
    return bytes(p)


def kvs(resp: dict) -> list[KV]:
    return [KV(unb64(k["key"]), unb64(k.get("value", "")), int(k.get("mod_revision", 0)),
               int(k.get("create_revision", 0))) for k in resp.get("kvs", ())]


# ---- requests and compares as the gateway's JSON --------------------------------------------------
def op_range(key: bytes, end: Optional[bytes] = None, keys_only: bool = False) -> dict:
    r: dict[str, Any] = {"key": b64(key)}
    if end is not None:
        r["range_end"] = b64(end)
    if keys_only:
        r["keys_only"] = True
    return {"request_range": r}


def op_put(key: bytes, value: bytes) -> dict:
    return {"request_put": {"key": b64(key), "value": b64(value)}}


def op_delete(key: bytes) -> dict:
    return {"request_delete_range": {"key": b64(key)}}


def cmp_mod(key: bytes, revision: int) -> dict:
    """True iff the key's mod_revision equals revision (0: the key does not exist)."""
    return {"key": b64(key), "target": "MOD", "result": "EQUAL", "mod_revision": str(revision)}


def _create_connection(host: str, port: int, timeout: float) -> _socket.socket:
    """socket.create_connection on _socket: each address getaddrinfo gives, in its order, until one connects;
    else the last one's error."""
    err = OSError("getaddrinfo returns an empty list")
    # bytes: a str host goes through the idna codec, which imports re (~5 ms); parse_endpoint allows ASCII only
    for family, kind, proto, _, addr in _socket.getaddrinfo(host.encode(), port, 0, _socket.SOCK_STREAM):
        sock = _socket.socket(family, kind, proto)
        try:
            sock.settimeout(timeout)
            sock.connect(addr)
            return sock
        except OSError as e:
            sock.close()
            err = e
    raise err


class Client:
    """One CNI call's connection to the cluster: sticks to the endpoint that answered, fails over in order."""

    def __init__(self, endpoints: list[Endpoint], timeout: float, request_timeout: float = 3.0,
                 ssl_context: Any = None, credentials: Optional[tuple[str, str]] = None):
        self.endpoints = endpoints
        self.deadline = time.monotonic() + timeout
        self.timeout = timeout
        self.request_timeout = request_timeout
        self.ssl_context = ssl_context
        self.credentials = credentials
        self.token = ""
        self.current = posix.getpid() % len(endpoints)  # spread processes over the members
        self.sock: Optional[_socket.socket] = None
        self.buf = b""
        self.reads = 0      # range requests and read-only txns sent (stats for the debug log and bench)
        self.txns = 0       # write txns sent, failed compares included
        self.conflicts = 0  # write txns whose compares failed

    # ---- public operations ------------------------------------------------------------------------
    def get(self, keys: list[bytes]) -> list[KV]:
        """Several keys read at one revision (one read-only txn); absent keys come back with value None."""
        self.reads += 1
        resp = self.call("/v3/kv/txn", {"success": [op_range(k) for k in keys]})
        out = []
        for k, r in zip(keys, resp.get("responses", ()), strict=False):
            found = kvs(r.get("response_range", {}))
            out.append(found[0] if found else KV(k, None))
        return out

    def get_prefix(self, prefix: bytes, keys_only: bool = False) -> list[KV]:
        self.reads += 1
        return kvs(self.call("/v3/kv/range", op_range(prefix, prefix_end(prefix), keys_only)["request_range"]))

    def get_prefixes(self, prefixes: list[bytes]) -> list[list[KV]]:
        """Several prefixes read at one revision."""
        self.reads += 1
        resp = self.call("/v3/kv/txn", {"success": [op_range(p, prefix_end(p)) for p in prefixes]})
        return [kvs(r.get("response_range", {})) for r in resp.get("responses", ())]

    def txn(self, compares: list[dict], success: list[dict], failure_keys: list[bytes]) -> tuple[bool, list[KV]]:
        """One conditional write: (True, []) when the compares held, else (False, current failure_keys)."""
        self.txns += 1
        resp = self.call("/v3/kv/txn", {"compare": compares, "success": success,
                                        "failure": [op_range(k) for k in failure_keys]})
        if resp.get("succeeded"):
            return True, []
        self.conflicts += 1
        out = []
        for k, r in zip(failure_keys, resp.get("responses", ()), strict=False):
            found = kvs(r.get("response_range", {}))
            out.append(found[0] if found else KV(k, None))
        return False, out

    def close(self) -> None:
        if self.sock is not None:
            try:
                self.sock.close()
            except OSError:
                pass
            self.sock = None

    # ---- transport --------------------------------------------------------------------------------
    def call(self, path: str, body: dict) -> dict:
        tried: dict[str, str] = {}
        permanent: set[str] = set()
        start = time.monotonic()
        backoff = 0.05
        n = len(self.endpoints)
        while True:
            for i in range(n):
                ep = self.endpoints[(self.current + i) % n]
                if ep.url in permanent:
                    continue
                try:
                    resp = self._request(ep, path, body)
                    self.current = (self.current + i) % n
                    return resp
                except _Retry as e:
                    self.close()
                    if ep.url not in tried or str(e) != "deadline reached":  # keep the real reason
                        tried[ep.url] = str(e)
                    if e.permanent:
                        permanent.add(ep.url)
                if self.left() <= 0:
                    break
            left = self.left()
            if left <= 0 or len(permanent) == n:
                raise Unreachable([(ep.url, tried.get(ep.url, "not tried: deadline")) for ep in self.endpoints],
                                  time.monotonic() - start)
            time.sleep(min(backoff, left))
            backoff = min(backoff * 2, 0.5)

    def left(self) -> float:
        return self.deadline - time.monotonic()

    def _request(self, ep: Endpoint, path: str, body: dict) -> dict:
        if self.credentials and not self.token and path != "/v3/auth/authenticate":
            self._authenticate(ep)
        status, data = self._http(ep, path, jsonc.dumps(body).encode())
        try:
            resp = jsonc.loads(data) if data else {}
        except ValueError:
            raise _Retry(f"HTTP {status} with a body that is not JSON") from None
        if status == 200 and isinstance(resp, dict):
            return resp
        code = int(resp.get("code", 0)) if isinstance(resp, dict) else 0
        msg = str(resp.get("message") or resp.get("error") or "") if isinstance(resp, dict) else ""
        if self.credentials and "token" in msg and path != "/v3/auth/authenticate" and self.token:
            self.token = ""  # expired simple token: authenticate again, once per attempt
            raise _Retry(f"auth token rejected: {msg}")
        if code in RETRYABLE_GRPC or status >= 500 and code == 0:
            raise _Retry(f"HTTP {status}: {msg or 'no message'}")
        raise Refused(ep.url, code, msg or f"HTTP {status}")

    def _authenticate(self, ep: Endpoint) -> None:
        assert self.credentials is not None
        user, password = self.credentials
        resp = self._request(ep, "/v3/auth/authenticate", {"name": user, "password": password})
        token = resp.get("token")
        if not isinstance(token, str) or not token:
            raise Refused(ep.url, 16, "authenticate returned no token (is auth enabled on the cluster?)")
        self.token = token

    def _connect(self, ep: Endpoint) -> _socket.socket:
        left = self.left()
        if left <= 0:
            raise _Retry("deadline reached")
        try:
            sock = _create_connection(ep.host, ep.port, min(self.request_timeout, left))
        except TimeoutError:
            raise _Retry("connect timed out") from None
        except OSError as e:
            raise _Retry(e.strerror or str(e)) from None
        sock.setsockopt(_socket.IPPROTO_TCP, _socket.TCP_NODELAY, 1)
        if ep.tls:
            import socket  # ssl imports it anyway; SSLContext.wrap_socket takes a socket.socket

            timeout = sock.gettimeout()
            sock = socket.socket(fileno=sock.detach())
            sock.settimeout(timeout)  # a socket made from an fd starts without the timeout
            try:
                sock = self.ssl_context.wrap_socket(sock, server_hostname=ep.host)
            except OSError as e:  # ssl.SSLError and its certificate failures are OSErrors
                sock.close()
                verify = getattr(e, "verify_message", None)
                if verify:  # a wrong CA or a foreign server: asking again will not help
                    raise _Retry(f"TLS: certificate verify failed: {verify}", permanent=True) from None
                raise _Retry(f"TLS: {getattr(e, 'reason', None) or e}") from None
        return sock

    def _http(self, ep: Endpoint, path: str, payload: bytes) -> tuple[int, bytes]:
        fresh = self.sock is None
        if fresh:
            self.sock = self._connect(ep)
            self.buf = b""
        head = (f"POST {path} HTTP/1.1\r\nHost: {ep.host}:{ep.port}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(payload)}\r\n")
        if self.token:
            head += f"Authorization: {self.token}\r\n"
        try:
            return self._exchange((head + "\r\n").encode() + payload)
        except _Retry:
            if fresh:
                raise
            # A kept-alive connection the server closed meanwhile: one more try on a new one.
            self.close()
            self.sock = self._connect(ep)
            self.buf = b""
            return self._exchange((head + "\r\n").encode() + payload)

    def _exchange(self, request: bytes) -> tuple[int, bytes]:
        assert self.sock is not None
        try:
            self.sock.settimeout(max(0.001, min(self.request_timeout, self.left())))
            self.sock.sendall(request)
            line = self._line()
            parts = line.split(None, 2)
            if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit():
                raise _Retry(f"not an HTTP answer: {line[:60]!r}")
            status = int(parts[1])
            length = -1
            chunked = close = False
            while True:
                h = self._line()
                if not h:
                    break
                name, _, value = h.partition(b":")
                name = name.strip().lower()
                value = value.strip().lower()
                if name == b"content-length" and value.isdigit():
                    length = int(value)
                elif name == b"transfer-encoding" and b"chunked" in value:
                    chunked = True
                elif name == b"connection" and value == b"close":
                    close = True
            if chunked:
                body = b""
                while True:
                    size = int(self._line().split(b";")[0].strip() or b"0", 16)
                    if size == 0:
                        while self._line():
                            pass
                        break
                    body += self._exact(size)
                    self._line()
                    if len(body) > MAX_RESPONSE:
                        raise _Retry("answer too large")
            elif length >= 0:
                if length > MAX_RESPONSE:
                    raise _Retry("answer too large")
                body = self._exact(length)
            else:
                close = True
                body = self._until_close()
            if close:
                self.close()
            return status, body
        except TimeoutError:  # socket.timeout
            raise _Retry("timed out") from None
        except OSError as e:
            reason = getattr(e, "reason", None)  # an ssl.SSLError: the server's alert, e.g. our client cert refused
            if reason:
                raise _Retry(f"TLS: {reason}", permanent="CERTIFICATE" in str(reason)) from None
            raise _Retry(e.strerror or str(e) or type(e).__name__) from None
        except ValueError:
            raise _Retry("malformed HTTP answer") from None

    def _fill(self) -> None:
        assert self.sock is not None
        self.sock.settimeout(max(0.001, min(self.request_timeout, self.left())))
        chunk = self.sock.recv(65536)
        if not chunk:
            raise _Retry("connection closed by the server")
        self.buf += chunk

    def _line(self) -> bytes:
        while True:
            i = self.buf.find(b"\r\n")
            if i >= 0:
                line, self.buf = self.buf[:i], self.buf[i + 2:]
                return line
            if len(self.buf) > 65536:
                raise _Retry("HTTP header line too long")
            self._fill()

    def _exact(self, n: int) -> bytes:
        while len(self.buf) < n:
            self._fill()
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def _until_close(self) -> bytes:
        try:
            while len(self.buf) <= MAX_RESPONSE:
                self._fill()
        except _Retry:
            pass
        data, self.buf = self.buf, b""
        return data


class _Retry(Exception):
    """This endpoint failed for this request; try the next one (the reason is reported if all fail).
    permanent: retrying this endpoint within the call cannot help (a certificate that does not verify)."""

    def __init__(self, reason: str, permanent: bool = False):
        super().__init__(reason)
        self.permanent = permanent
