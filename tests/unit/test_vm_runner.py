"""tools/vm's pure parts, on the host: the initramfs archive, vmlinux extraction, the guest command
script (quoting, environment, PATH). Booting itself is exercised by `make test-vm`."""
from __future__ import annotations

import gzip
import lzma
import os
import shlex
import subprocess
import sys

from tools.vm import prepare, run


def read_newc(data: bytes) -> dict[str, tuple[int, bytes, int]]:
    """A minimal independent newc reader: name -> (mode, data, rdev)."""
    out, off = {}, 0
    while True:
        assert data[off:off + 6] == b"070701"
        f = [int(data[off + 6 + 8 * i: off + 14 + 8 * i], 16) for i in range(13)]
        mode, size, rdev, namesize = f[1], f[6], (f[9] << 8) | f[10], f[11]
        name = data[off + 110: off + 110 + namesize - 1].decode()
        off += 110 + namesize
        off += -off % 4
        body = data[off: off + size]
        off += size
        off += -off % 4
        if name == "TRAILER!!!":
            assert off == len(data)
            return out
        out[name] = (mode, body, rdev)


def test_cpio_newc_round_trip():
    entries = [("bin", 0o040755, b"", 0), ("dev/console", 0o020600, b"", (5 << 8) | 1),
               ("init", 0o100755, b"#!/bin/sh\necho hi\n", 0), ("odd", 0o100644, b"x" * 5, 0)]
    got = read_newc(prepare.cpio_newc(entries))
    assert got == {name: (mode, data, rdev) for name, mode, data, rdev in entries}


def test_extract_vmlinux_finds_the_compressed_elf():
    elf = b"\x7fELF" + os.urandom(3000)
    for compressed in (lzma.compress(elf, format=lzma.FORMAT_XZ), gzip.compress(elf)):
        # a fake bzImage: setup code (with a false gzip magic), the payload, trailing bytes
        bz = b"MZ" + b"\0" * 500 + b"\x1f\x8b\x08junk" + compressed + b"\0" * 64
        assert prepare.extract_vmlinux(bz) == elf
    assert prepare.extract_vmlinux(b"MZ" + b"\0" * 100) is None


def test_command_script_quotes_arguments_and_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("ODD_VALUE", "it's $HOME `x` \"q\"")
    monkeypatch.setenv("PATH", "/root/.pyenv/shims:/root/.pyenv/plugins/pyenv-virtualenv/shims:/usr/bin:/bin")
    argv = ["python3", "-c", "import os, sys; print(sys.argv[1:], os.environ['ODD_VALUE'], os.getcwd())",
            "a b", "it's", "$x", ""]
    script = run.command_script(argv, tmp_path, {"CNI_RDMA_VM_GUEST": "1"})
    assert "/shims" not in script
    # run it here, with the interpreter on PATH (what the guest does with the host's /bin/sh)
    script = script.replace("exec python3", f"exec {shlex.quote(sys.executable)}")
    p = subprocess.run(["/bin/sh", "-c", script], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == f"['a b', \"it's\", '$x', ''] it's $HOME `x` \"q\" {tmp_path}"


def test_guest_path_drops_pyenv_shims_and_keeps_sbin(monkeypatch):
    monkeypatch.setenv("PATH", "/root/.pyenv/shims:/usr/bin")
    parts = run.guest_path().split(":")
    assert not any(p.endswith("/shims") for p in parts)
    assert parts[0].endswith("/bin") and "/usr/sbin" in parts and "/usr/bin" in parts


def test_rxe_patch_is_documented_as_a_fixture():
    text = (prepare.PATCHES / "rxe-disassociate.patch").read_text()
    assert "TEST FIXTURE" in text.splitlines()[0]
    assert "+\t.disassociate_ucontext = rxe_disassociate_ucontext," in text


def test_hang_watch_ends_only_a_guest_that_reported_a_lockup_and_then_stalled(tmp_path):
    console, out = tmp_path / "console.log", tmp_path / "stdout"
    console.write_bytes(b"[ 1.0] booting\n")
    out.write_bytes(b"")
    w = run.HangWatch(console, [out], grace=100)
    assert not w.hung(0) and not w.hung(500)  # quiet, but no lockup report: only the timeout ends it
    with open(console, "ab") as f:
        f.write(b"[ 90.1] watchdog: BUG: soft lo")  # the marker straddles two reads
    assert not w.hung(510)
    with open(console, "ab") as f:
        f.write(b"ckup - CPU#0 stuck for 45s! [runc:279]\n")
    assert not w.hung(520)  # reported: the grace starts
    out.write_bytes(b"..")  # the guest carried on (pytest printed): forgiven
    assert not w.hung(700)
    with open(console, "ab") as f:
        f.write(b"rcu: INFO: rcu_preempt self-detected stall on CPU\n")
    assert not w.hung(710)
    assert not w.hung(800)
    assert w.hung(811)  # no byte from the guest for longer than the grace after the report: hung
