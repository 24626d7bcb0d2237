"""A real 3-member etcd cluster (Debian's etcd-server) on loopback ports, for the cluster-ipam tier and bench.

Members run as child processes with data dirs under a private temp dir (tmpfs when /dev/shm exists: fsync
is then free), are stopped by their PID (SIGTERM, then SIGKILL), and `kill(i)` / `start(i)` let a test take one
down and bring it back with the same data. Client TLS is optional: `tls=TlsFiles` serves https with client
certificates required. Ports are picked free and retried on a clash with another engineer's run.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

ETCD = shutil.which("etcd") or "/usr/bin/etcd"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class TlsFiles:
    """A CA, a server certificate for 127.0.0.1 and a client certificate, made with the openssl CLI."""

    def __init__(self, d: Path, name: str = "ca"):
        d.mkdir(parents=True, exist_ok=True)
        self.dir = d
        self.ca, self.ca_key = d / f"{name}.pem", d / f"{name}-key.pem"
        self._openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                      "-keyout", self.ca_key, "-out", self.ca, "-days", "2", "-subj", f"/CN=cni-rdma test {name}")
        self.server, self.server_key = self._issue("server", "subjectAltName=IP:127.0.0.1,DNS:localhost\n"
                                                   "extendedKeyUsage=serverAuth,clientAuth")
        self.client, self.client_key = self._issue("client", "extendedKeyUsage=clientAuth")

    def _openssl(self, *args) -> None:
        subprocess.run(["openssl", *map(str, args)], check=True, capture_output=True)

    def _issue(self, who: str, ext: str) -> tuple[Path, Path]:
        key, csr, crt, extf = (self.dir / f"{who}-key.pem", self.dir / f"{who}.csr", self.dir / f"{who}.pem",
                               self.dir / f"{who}.ext")
        extf.write_text(ext + "\n")
        self._openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", key,
                      "-out", csr, "-subj", f"/CN={who}")
        self._openssl("x509", "-req", "-in", csr, "-CA", self.ca, "-CAkey", self.ca_key, "-CAcreateserial",
                      "-out", crt, "-days", "2", "-extfile", extf)
        key.chmod(0o600)
        return crt, key


class Member:
    def __init__(self, name: str, data: Path, client_port: int, peer_port: int):
        self.name = name
        self.data = data
        self.client_port = client_port
        self.peer_port = peer_port
        self.proc: subprocess.Popen | None = None


class EtcdCluster:
    def __init__(self, size: int = 3, tls: TlsFiles | None = None, root: str | None = None,
                 netns: str | None = None, host: str = "127.0.0.1"):
        """netns: run the members inside that network namespace (by name), listening on host there."""
        base = root or ("/dev/shm" if os.path.isdir("/dev/shm") else None)
        self.dir = Path(tempfile.mkdtemp(prefix="cni-rdma-etcd-", dir=base))
        self.tls = tls
        self.netns = netns
        self.host = host
        self.scheme = "https" if tls else "http"
        self.members = [Member(f"m{i}", self.dir / f"m{i}", free_port(), free_port()) for i in range(size)]
        self.token = os.path.basename(self.dir)

    @property
    def endpoints(self) -> list[str]:
        return [f"{self.scheme}://{self.host}:{m.client_port}" for m in self.members]

    def etcd_conf(self, **extra) -> dict:
        """The `ipam.etcd` object a plugin config needs to reach this cluster."""
        conf = {"endpoints": self.endpoints, "timeout": 5}
        if self.tls:
            conf.update(caFile=str(self.tls.ca), certFile=str(self.tls.client), keyFile=str(self.tls.client_key))
        conf.update(extra)
        return conf

    def _args(self, m: Member, state: str) -> list[str]:
        initial = ",".join(f"{x.name}=http://{self.host}:{x.peer_port}" for x in self.members)
        url = f"{self.scheme}://{self.host}:{m.client_port}"
        # `ip netns exec` execs etcd: the PID we hold is etcd's own
        args = ["ip", "netns", "exec", self.netns] if self.netns else []
        args += [ETCD, "--name", m.name, "--data-dir", str(m.data),
                "--listen-client-urls", url, "--advertise-client-urls", url,
                "--listen-peer-urls", f"http://{self.host}:{m.peer_port}",
                "--initial-advertise-peer-urls", f"http://{self.host}:{m.peer_port}",
                "--initial-cluster", initial, "--initial-cluster-state", state,
                "--initial-cluster-token", self.token,
                # A loaded 2-core test machine: heartbeats every 50 ms, an election after 1 s of silence.
                "--heartbeat-interval", "50", "--election-timeout", "1000",
                "--snapshot-count", "10000", "--logger", "zap", "--log-level", "error", "--log-outputs", "stderr"]
        if self.tls:
            args += ["--cert-file", str(self.tls.server), "--key-file", str(self.tls.server_key),
                     "--trusted-ca-file", str(self.tls.ca), "--client-cert-auth"]
        return args

    def start(self, i: int | None = None, state: str = "existing") -> None:
        for m in self.members if i is None else [self.members[i]]:
            if m.proc is not None and m.proc.poll() is None:
                continue
            log = open(self.dir / f"{m.name}.log", "ab")
            m.proc = subprocess.Popen(self._args(m, state), stdout=log, stderr=log, stdin=subprocess.DEVNULL,
                                      start_new_session=True)
            log.close()

    def up(self, timeout: float = 60) -> "EtcdCluster":
        self.start(state="new")
        self.wait_healthy(timeout)
        return self

    def kill(self, i: int, sig: int = signal.SIGKILL) -> None:
        m = self.members[i]
        if m.proc is not None and m.proc.poll() is None:
            os.kill(m.proc.pid, sig)
            m.proc.wait(timeout=30)

    def stop(self) -> None:
        for m in self.members:
            if m.proc is not None and m.proc.poll() is None:
                os.kill(m.proc.pid, signal.SIGTERM)
        for m in self.members:
            if m.proc is not None:
                try:
                    m.proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    os.kill(m.proc.pid, signal.SIGKILL)
                    m.proc.wait()

    def destroy(self) -> None:
        # SIGKILL: a graceful stop first hands leadership over (~7 s here), and the data goes anyway
        for i in range(len(self.members)):
            self.kill(i)
        shutil.rmtree(self.dir, ignore_errors=True)

    def logs(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-3000:]}" for p in self.dir.glob("*.log"))

    # ---- a tiny independent client for test setup and checks (urllib over the gateway) ---------------
    def _ctx(self):
        if not self.tls:
            return None
        import ssl

        ctx = ssl.create_default_context(cafile=str(self.tls.ca))
        ctx.load_cert_chain(str(self.tls.client), str(self.tls.client_key))
        return ctx

    def post(self, path: str, body: dict, member: int | None = None, timeout: float = 5) -> dict:
        if self.netns:  # a socket made in a thread that entered the members' netns
            from cni_rdma.netns import in_netns

            return in_netns(f"/var/run/netns/{self.netns}", self._post, path, body, member, timeout)
        return self._post(path, body, member, timeout)

    def _post(self, path: str, body: dict, member: int | None, timeout: float) -> dict:
        order = [member] if member is not None else range(len(self.members))
        last: Exception | None = None
        for i in order:
            m = self.members[i]
            if member is None and (m.proc is None or m.proc.poll() is not None):
                continue
            req = urllib.request.Request(f"{self.scheme}://{self.host}:{m.client_port}{path}",
                                         data=json.dumps(body).encode(), method="POST")
            try:
                with urllib.request.urlopen(req, timeout=timeout, context=self._ctx()) as r:
                    return json.loads(r.read())
            except Exception as e:  # noqa: BLE001 - next member
                last = e
        raise RuntimeError(f"no etcd member answered {path}: {last}")

    def wait_healthy(self, timeout: float = 60, members: list[int] | None = None) -> None:
        end = time.monotonic() + timeout
        want = members if members is not None else [i for i, m in enumerate(self.members)
                                                     if m.proc is not None and m.proc.poll() is None]
        pending = set(want)
        while pending and time.monotonic() < end:
            for i in list(pending):
                try:
                    self.post("/v3/kv/range", {"key": "aGVhbHRo"}, member=i, timeout=2)  # linearizable read
                    pending.discard(i)
                except RuntimeError:
                    pass
            if pending:
                time.sleep(0.1)
        if pending:
            raise RuntimeError(f"etcd members {sorted(pending)} not healthy after {timeout}s\n{self.logs()}")

    def range_prefix(self, prefix: str) -> dict[str, bytes]:
        import base64

        p = prefix.encode()
        end = p[:-1] + bytes([p[-1] + 1])
        resp = self.post("/v3/kv/range", {"key": base64.b64encode(p).decode(),
                                          "range_end": base64.b64encode(end).decode()})
        return {base64.b64decode(kv["key"]).decode(): base64.b64decode(kv.get("value", ""))
                for kv in resp.get("kvs", [])}

    def revision(self) -> int:
        return int(self.post("/v3/kv/range", {"key": "eA=="})["header"]["revision"])
