"""`hsp run CONFIG`: the long-running processor (or, with --batch, Hindsight's hindsight_cli)."""

from __future__ import annotations

import sys

import click

from hindsight_py.config.model import ConfigError


@click.command("run")
@click.argument("config", type=click.Path(exists=True, dir_okay=False))
@click.option("--batch", is_flag=True, help="Exit when the inputs finish, after draining analysis then outputs.")
@click.option("--log-level", type=click.IntRange(0, 7), default=6, show_default=True, help="0..7 as Hindsight (7 = debug, enables print()).")
@click.option("--json-logs/--text-logs", default=None, help="Log format (default: text on a terminal, JSON otherwise).")
@click.option("--status/--no-status", default=None, help="Live status screen on stdout (default: on when stdout is a terminal).")
def run_command(config: str, batch: bool, log_level: int, json_logs: bool | None, status: bool | None) -> None:
    """Run the plugins of CONFIG (hsp TOML, or an unchanged Hindsight hindsight.cfg)."""
    from hindsight_py.kernel.logging import configure_logging
    from hindsight_py.kernel.supervisor import Kernel, load_configuration

    configure_logging(log_level, json=json_logs)
    try:
        hcfg, plugins = load_configuration(config)
    except ConfigError as e:
        click.echo(f"hsp: configuration error: {e}", err=True)
        sys.exit(1)
    code = Kernel(hcfg, plugins, batch=batch, log_level=log_level, status=status).run()
    sys.exit(code)
