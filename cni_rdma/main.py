"""Entry point of the single executable: dispatch on the name it was invoked as (argv[0]).

Imports only sys and posix at the top (no plugin imports os: ~2 ms with what it pulls): the about line, VERSION
and CNI_* env errors are answered by cni_rdma/early.py before the plugin is imported (tests/unit/test_startup.py);
frozen, the plugin's modules then come from the bundle's modules file (cni_rdma/bundled.py).
"""
import gc
import posix
import sys

# A plugin process lives for one call: the cyclic garbage collector would only spend start-up time (a few
# collections during the imports, 2-4 ms) and free nothing. The operator CLI turns it back on.
gc.disable()

from .registry import ABOUT, PLUGINS, load

CLI_NAME = "cni-rdma"  # the bundle's own name: with a subcommand it is the operator CLI
_plugin_call = False  # set once main() dispatches to a plugin: run() may then skip the interpreter's teardown


def run() -> None:
    """The process entry (tools/launcher.c, the dev launchers): main(), then the exit.

    A plugin process serves one call: once its answer is flushed, it ends with _exit, without the
    interpreter's teardown (every module's cleanup and a GC pass that gc.disable() does not stop: 3-7 ms of
    every call). Nothing of ours needs it: state and logs are written with posix.write, and stdout/stderr, the
    only buffered files, are flushed here. The operator CLI exits the normal way."""
    code = main()
    if not _plugin_call:
        sys.exit(code)
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # the caller closed the pipe: as Python's own exit, status 120
            code = code or 120
    posix._exit(code)


def main(argv: "list[str] | None" = None) -> int:
    argv = sys.argv if argv is None else argv
    name = argv[0].rpartition("/")[2]  # os.path.basename
    if len(argv) > 1 and argv[1] == "--version":
        from .version import print_build_version
        return print_build_version(name)
    if name == CLI_NAME and (len(argv) > 1 or not posix.environ.get(b"CNI_COMMAND")):
        # The operator CLI (click, pyudev; `install`/`uninstall` run cni_rdma.installer): imported only here,
        # never on a plugin's path.
        gc.enable()
        import _signal  # noqa: F401  # Ctrl-C as KeyboardInterrupt: frozen, tools/launcher.c skips that set-up

        from .bundled import install

        install()  # frozen: the bundle's modules from one file (cni_rdma/bundled.py)
        from .cli import main as cli_main
        return cli_main(argv)
    module_name = PLUGINS.get(name)
    if module_name is None:
        sys.stderr.write(f"cni-rdma: invoked as {name!r}; install it under one of: {', '.join(sorted(PLUGINS))}\n")
        return 1
    global _plugin_call
    _plugin_call = True
    from . import early

    answered = early.main(ABOUT[name])
    if answered is not None:
        return answered
    try:
        from .bundled import install

        install()  # frozen: the rest of the imports from one file, not a .pyc each (cni_rdma/bundled.py)
        module = load(module_name)
    except Exception as e:  # a broken install must still answer in CNI's error format
        from .errors import INTERNAL, CniError
        from .version import CURRENT

        err = CniError(INTERNAL, f"cni-rdma: plugin {name!r} failed to load: {type(e).__name__}: {e}")
        sys.stdout.write(early.error_json(err, CURRENT) + "\n")
        return 1
    from . import skel
    return skel.run(module)


if __name__ == "__main__":
    run()
