"""`hsp deploy`, `hsp stop`, `hsp list`: manage the plugins of a running `hsp run` through its
dashboard API (docs/dashboard.md). Plain urllib, so the commands need nothing beyond hsp.

The URL comes from `--url`, else `$HSP_DASHBOARD_URL`, else `<output_path>/dashboard.url` of
`--config` (written by `hsp run` while it serves the dashboard), else http://127.0.0.1:8080;
the token from `--token` or `$HSP_DASHBOARD_TOKEN`.
"""

from __future__ import annotations

import json
import os
import sys
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import click

__all__ = ["deploy_command", "stop_command", "list_command", "ApiClient"]

DEFAULT_URL = "http://127.0.0.1:8080"


class ApiError(Exception):
    pass


class ApiClient:
    def __init__(self, url: str, token: str | None, timeout: float = 60.0) -> None:
        self.url = url.rstrip("/")
        self.token = token
        self.timeout = timeout

    def call(self, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        headers = {"Accept": "application/json"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        req = urllib.request.Request(self.url + path, data=data, headers=headers, method="POST" if data is not None else "GET")
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as r:  # noqa: S310 - an operator-given URL
                return dict(json.loads(r.read() or b"{}"))
        except urllib.error.HTTPError as e:
            try:
                msg = json.loads(e.read()).get("error") or e.reason
            except ValueError:
                msg = e.reason
            raise ApiError(f"{e.code}: {msg}") from None
        except urllib.error.URLError as e:
            raise ApiError(f"cannot reach the hsp dashboard at {self.url}: {e.reason}") from None


def _url(url: str | None, config: str | None) -> str:
    if url:
        return url
    if os.environ.get("HSP_DASHBOARD_URL"):
        return os.environ["HSP_DASHBOARD_URL"]
    if config:
        from hindsight_py.kernel.supervisor import load_configuration

        hcfg, _ = load_configuration(config)
        try:
            return (Path(hcfg.output_path) / "dashboard.url").read_text().strip()
        except OSError:
            raise click.ClickException(f"{config}: no running dashboard ({hcfg.output_path}/dashboard.url is missing)") from None
    return DEFAULT_URL


def _client(url: str | None, token: str | None, config: str | None) -> ApiClient:
    return ApiClient(_url(url, config), token or os.environ.get("HSP_DASHBOARD_TOKEN") or None)


_common = [
    click.option("--url", help="The dashboard of the running hsp (default: $HSP_DASHBOARD_URL or http://127.0.0.1:8080)."),
    click.option("--token", help="API token (default: $HSP_DASHBOARD_TOKEN)."),
    click.option("--config", "config", type=click.Path(exists=True, dir_okay=False), help="Find the URL from this configuration's output_path/dashboard.url."),
]


def common(f: Any) -> Any:
    for opt in reversed(_common):
        f = opt(f)
    return f


@click.command("deploy")
@click.argument("plugin", type=click.Path(exists=True, dir_okay=False))
@click.option("--cfg", "cfg_file", type=click.Path(exists=True, dir_okay=False), required=True, help="The plugin's cfg (Hindsight Lua syntax: message_matcher, ticker_interval, user keys...).")
@click.option("--name", help="Plugin name (default: the Lua file's name without .lua).")
@click.option("--type", "ptype", type=click.Choice(["analysis", "input", "output"]), default="analysis", show_default=True)
@common
def deploy_command(plugin: str, cfg_file: str, name: str | None, ptype: str, url: str | None, token: str | None, config: str | None) -> None:
    """Validate PLUGIN.lua with its cfg in a scratch sandbox, then deploy (or replace) it."""
    client = _client(url, token, config)
    name = name or Path(plugin).stem
    body = {"name": name, "type": ptype, "source": Path(plugin).read_text(encoding="utf-8"),
            "cfg": Path(cfg_file).read_text(encoding="utf-8")}
    try:
        out = client.call("/api/plugins", body)
    except ApiError as e:
        click.echo(f"hsp deploy: {e}", err=True)
        sys.exit(1)
    click.echo(f"{'replaced' if out.get('replaced') else 'deployed'} {out.get('plugin')}")


@click.command("stop")
@click.argument("name")
@common
def stop_command(name: str, url: str | None, token: str | None, config: str | None) -> None:
    """Stop a running plugin (NAME or analysis.NAME): its cfg becomes .off."""
    try:
        out = _client(url, token, config).call(f"/api/plugins/{urllib.parse.quote(name, safe='')}/stop", {})
    except ApiError as e:
        click.echo(f"hsp stop: {e}", err=True)
        sys.exit(1)
    click.echo(f"stopping {out.get('plugin')}")


@click.command("list")
@common
def list_command(url: str | None, token: str | None, config: str | None) -> None:
    """The plugins of the running hsp: name, state, processed, injected (and why one stopped)."""
    try:
        out = _client(url, token, config).call("/api/plugins")
    except ApiError as e:
        click.echo(f"hsp list: {e}", err=True)
        sys.exit(1)
    for p in out.get("plugins", []):
        line = f"{p['name']:<32} {p['state']:<11} {p['processed']:>10} {p['injected']:>10}"
        if p.get("reason"):
            line += f"  {p['reason']}"
        click.echo(line.rstrip())
