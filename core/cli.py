"""The `llmlab` command line. With no arguments it opens the Textual app.

Subcommands import torch/transformers only when they run, so `llmlab --help` stays instant.
Every expected failure (bad input, no network, unwritable output) ends as one line on stderr
and exit code 2; Ctrl-C ends with 130.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from core import __version__
from core.errors import DISK_FULL, UsageError


@click.group(invoke_without_command=True, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="llmlab")
@click.pass_context
def cli(ctx: click.Context) -> None:
    """llmlab: pretrain GPT-2 and evaluate small LMs, from a terminal app or headless.

    Run with no command to open the app.
    """
    if ctx.invoked_subcommand is None:
        from tui.app import run_app  # deferred: the engine never needs textual

        run_app()


@cli.command("hw")
@click.option("--json", "as_json", is_flag=True, help="Print the snapshot as JSON.")
def hw_command(as_json: bool) -> None:
    """Show this machine's GPUs, CPU, memory and library versions."""
    from core.hardware import describe, snapshot

    hw = snapshot()
    if as_json:
        click.echo(json.dumps(hw, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title="llmlab hardware", show_header=False)
    table.add_column(style="bold")
    table.add_column()
    for label, value in describe(hw):
        table.add_row(label, str(value))
    Console().print(table)


@cli.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on. Anything but loopback is reachable from other machines; prefer an SSH tunnel.")
@click.option("--port", type=click.IntRange(1, 65535), default=8000, show_default=True, help="Port to listen on.")
@click.option("--runs", type=click.Path(path_type=Path), default=None,
              help="Runs folder every tab's app uses (default: $LLMLAB_RUNS_DIR or ./runs).")
@click.option("--token", envvar="LLMLAB_SERVE_TOKEN", default=None, show_envvar=True,
              help="Secret a browser must show (at least 16 characters). Default: one is generated and printed in the URL.")
@click.option("--no-token", is_flag=True, help="Serve without a token; refused unless --host is loopback.")
def serve_command(host: str, port: int, runs: Path | None, token: str | None, no_token: bool) -> None:
    """Serve the app to web browsers: one app process per tab, behind a token.

    Listens on 127.0.0.1 and prints the URL and the SSH tunnel command for a laptop. Jobs started
    from a tab keep running when the tab closes. No TLS: use the tunnel or a TLS reverse proxy.
    """
    from tui.serve import serve  # deferred, like the app: the engine never needs textual or aiohttp

    serve(host, port, runs, token, no_token)


def _register_subcommands() -> None:
    """One subcommand per registered kind (core/kinds.py), plus the tools that are not runs; adds only new ones."""
    from core.commands import add_kind_commands
    from core.kinds import load

    add_kind_commands(cli)
    for name, path in (("export", "core.export:export_command"), ("generate", "core.generate:generate_command"),
                       ("data", "core.preview:data_group")):
        if name not in cli.commands:
            cli.add_command(load(path), name)


_register_subcommands()


def main(argv: list[str] | None = None) -> int:
    """Console-script entry point; returns the process exit code."""
    _register_subcommands()
    from core.launch import remember_argv

    remember_argv(sys.argv[1:] if argv is None else argv)  # --processes N starts the ranks with the same command
    try:
        result = cli.main(args=argv, prog_name="llmlab", standalone_mode=False)
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.UsageError as exc:
        command = exc.ctx.command_path if exc.ctx else "llmlab"
        _error(f"{exc.format_message()} (see '{command} --help')")
        return 2
    except click.ClickException as exc:
        _error(exc.format_message())
        return 2
    except UsageError as exc:
        _error(str(exc))
        return 2
    except OSError as exc:
        if exc.errno not in DISK_FULL:
            raise
        where = f" writing {exc.filename}" if exc.filename else ""
        _error(f"the disk is full ({exc.strerror or 'no space left on device'}{where}); free some space "
               f"and run again (a stopped eval, or a pretraining run with a checkpoint, continues with --resume RUN_DIR)")
        return 2
    except (click.Abort, KeyboardInterrupt):
        if _main_rank():
            click.echo("llmlab: interrupted", err=True)
        return 130
    return result if isinstance(result, int) else 0


def _main_rank() -> bool:
    from core.distributed import world

    return world().main


def _error(message: str) -> None:
    """The one error line; with several processes only rank 0 says it (the others stop with the same error)."""
    if _main_rank():
        click.echo(f"llmlab: error: {message}", err=True)


if __name__ == "__main__":
    sys.exit(main())
