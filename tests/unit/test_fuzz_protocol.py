"""Arbitrary stdin bytes and env values never crash the skeleton (SPEC.md section 2 "Errors").

The bulk runs in-process against every real plugin module; a sample runs the real executables
(inside a throwaway netns so no stray input can touch this machine's links).
"""
import io
import json
import os
import subprocess

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from cni_rdma import skel
from cni_rdma.registry import PLUGINS
from cni_rdma.version import SUPPORTED
from tests.topology import bin_dir

COMMANDS = ["ADD", "DEL", "CHECK", "GC", "STATUS", "VERSION", "", "add", "BOGUS"]
env_text = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=40)
json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=10),
                           lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=8), c, max_size=3),
                           max_leaves=10)
configs = st.fixed_dictionaries(
    {"name": st.one_of(st.text(max_size=10), st.just("net"), json_values)},
    optional={"cniVersion": st.one_of(st.sampled_from(SUPPORTED + ("9.9.9", "", "1.1")), json_values),
              "type": st.one_of(st.sampled_from(list(PLUGINS)), json_values),
              "ipam": json_values, "prevResult": json_values, "args": json_values, "runtimeConfig": json_values,
              "dns": json_values, "cni.dev/valid-attachments": json_values},
).map(lambda d: json.dumps(d).encode())
stdins = st.one_of(st.binary(max_size=200), configs)
envs = st.fixed_dictionaries(
    {"CNI_COMMAND": st.sampled_from(COMMANDS)},
    optional={"CNI_CONTAINERID": env_text, "CNI_NETNS": st.one_of(env_text, st.just("/nonexistent/netns")),
              "CNI_IFNAME": env_text, "CNI_ARGS": env_text, "CNI_PATH": st.sampled_from(["/nonexistent", ""])},
)


def check_output(rc, out, cmd):
    assert "Traceback" not in out
    if rc == 0:
        if cmd == "VERSION":
            assert json.loads(out)["supportedVersions"] == list(SUPPORTED)
        return
    assert rc == 1
    err = json.loads(out)
    assert isinstance(err["code"], int) and isinstance(err["msg"], str) and err["msg"]
    assert "\n" not in err["msg"]
    assert err["cniVersion"] in SUPPORTED


@pytest.fixture(scope="module")
def modules():
    import importlib
    from tests.unit.test_skel import fake_plugin
    from cni_rdma.types import IPConfig, Result
    from cni_rdma import ipaddr
    # A stand-in plugin keeps the skeleton itself under fuzz even before every real plugin exists.
    found = {"fake": fake_plugin(Result(ips=(IPConfig(ipaddr.ip_interface("10.0.0.2/24")),)))}
    for name, mod in PLUGINS.items():
        try:
            found[name] = importlib.import_module(mod)
        except ImportError:
            pass  # plugin not written yet
    return found


@settings(max_examples=2500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), env=envs, stdin=stdins)
def test_in_process_never_crashes(modules, data, env, stdin, tmp_path_factory):
    name = data.draw(st.sampled_from(sorted(modules)))
    if env.get("CNI_COMMAND") == "ADD" and os.geteuid() == 0:
        # Real plugins would act on this host on a valid ADD: fuzz only paths that stop before the kernel.
        env = dict(env, CNI_NETNS="/nonexistent/netns")
    out, err = io.StringIO(), io.StringIO()
    rc = skel.run(modules[name], env, io.BytesIO(stdin), out, err)
    check_output(rc, out.getvalue(), env.get("CNI_COMMAND"))
    assert "Traceback" not in err.getvalue()


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root for the throwaway netns (unshare -n)")
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(env=envs, stdin=stdins, name=st.sampled_from(sorted(PLUGINS)))
def test_real_processes_never_crash(env, stdin, name):
    env = dict(env, PATH=os.environ.get("PATH", "/usr/bin:/bin"), CNI_NETNS="/nonexistent/netns")
    p = subprocess.run(["unshare", "-n", str(bin_dir() / name)], input=stdin, env=env, capture_output=True, timeout=30)
    out, err = p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")
    check_output(p.returncode, out, env["CNI_COMMAND"])
    assert "Traceback" not in err
