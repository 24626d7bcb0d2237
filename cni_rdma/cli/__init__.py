"""The `cni-rdma` operator CLI (click + pyudev). Never imported by a plugin: `cni_rdma.main` loads it only
when the bundle runs as `cni-rdma` with a subcommand (tests/unit/test_startup.py guards that)."""
from __future__ import annotations

import os
import sys


def main(argv: list[str]) -> int:
    """Run the command group; every error is one line on stderr and an exit code, never a traceback."""
    if sys.flags.no_site:  # plugin launchers run `python -IS` for start-up; the CLI needs site-packages
        import site

        site.main()
    try:
        import click
    except ImportError as e:
        sys.stderr.write(f"cni-rdma: error: the operator CLI needs click ({e}); pip install click pyudev\n")
        return 1

    from .app import cli
    from .common import EXIT_FAILED, EXIT_USAGE, one_line

    debug = os.environ.get("CNI_RDMA_DEBUG") == "1"
    try:
        rv = cli.main(args=argv[1:], prog_name="cni-rdma", standalone_mode=False)
        return rv if isinstance(rv, int) else 0
    except click.exceptions.Exit as e:
        return e.exit_code
    except click.UsageError as e:
        cmd = e.ctx.command_path if e.ctx else "cni-rdma"
        sys.stderr.write(f"{cmd}: error: {one_line(e.format_message())} (see `{cmd} --help`)\n")
        return EXIT_USAGE
    except click.ClickException as e:
        sys.stderr.write(f"cni-rdma: error: {one_line(e.format_message())}\n")
        return e.exit_code
    except click.Abort:
        sys.stderr.write("cni-rdma: aborted\n")
        return 130
    except BrokenPipeError:  # `cni-rdma ... | head`
        return 0
    except Exception as e:  # a bug or an unforeseen node state: still one line, exit 1
        if debug:
            raise
        msg = getattr(e, "msg", None) or str(e)
        sys.stderr.write(f"cni-rdma: error: {type(e).__name__}: {one_line(msg)} (CNI_RDMA_DEBUG=1 for a traceback)\n")
        return EXIT_FAILED
