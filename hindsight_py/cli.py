"""The `hsp` command line."""

from __future__ import annotations

import sys

import click

from hindsight_py import __version__
from hindsight_py.tools.bench_codec import bench_codec
from hindsight_py.tools.bench_http import bench_http
from hindsight_py.tools.bench_pipeline import bench_kafka_parquet
from hindsight_py.tools.bench_sandbox import bench_sandbox
from hindsight_py.tools.bench_workload import bench_workload
from hindsight_py.tools.cat import cat_command
from hindsight_py.tools.deploy import deploy_command, list_command, stop_command
from hindsight_py.tools.run import run_command
from hindsight_py.tools.test_cmd import test_command


@click.group(context_settings={"help_option_names": ["--help"]})
@click.version_option(__version__, prog_name="hsp")
def main() -> None:
    """hsp: a Lua-sandboxed stream processor compatible with Mozilla's Hindsight."""


@main.group("bench")
def bench() -> None:
    """Benchmarks (never timed tests): results go to docs/performance.md."""


bench.add_command(bench_codec)
bench.add_command(bench_http)
bench.add_command(bench_kafka_parquet)
bench.add_command(bench_sandbox)
bench.add_command(bench_workload)
main.add_command(cat_command)
main.add_command(run_command)
main.add_command(deploy_command)
main.add_command(stop_command)
main.add_command(list_command)
main.add_command(test_command)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
