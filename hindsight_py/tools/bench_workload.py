"""`hsp bench workload`: the standard throughput workload (bench-workload/README.md) on hsp.

The plugins are the workload's own Hindsight plugins, loaded unchanged from package data, run by
the real kernel in batch mode. Scenarios as in the workload README:

  input_only   bench_gen alone (the supervisor's input thread)
  q_*          one reader over a pre-filled input queue: analysis plugins in one worker process,
               or an output plugin in the supervisor
  pipe_true    bench_gen -> bench_count -> bench_out_count, everything at once

A stage's CPU time is that of the process that runs it (the worker process for analysis: child
rusage; the supervisor for inputs/outputs), so msg/s per stage compares with Hindsight's per-
thread figures. Peak RSS is the largest of the supervisor and the workers.
"""

from __future__ import annotations

import os
import resource
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import click

from hindsight_py.resources import _PKG
from hindsight_py.tools.bench_codec import machine_line

WORKLOAD = _PKG / "bench" / "workload"

# Real Hindsight 0.16 on a 2-core x86-64 machine, thread CPU per message, 1 GiB queue files
# (bench-workload/README.md).
HINDSIGHT_US = {
    "input_only": 1.84,
    "q_count": 0.41,
    "q_count_foo": 0.29,
    "q_work": 1.47,
    "q_work_cb": 1.63,
    "q_out_count": 0.52,
    "q_out_file": 1.56,
}

ANALYSIS = {
    "q_count": ("bench_count.lua", "TRUE"),
    "q_count_foo": ("bench_count.lua", "Type == 'foo'"),
    "q_work": ("bench_work.lua", "TRUE"),
    "q_work_cb": ("bench_work_cb.lua", "TRUE"),
}
OUTPUTS = {"q_out_count": "bench_out_count.lua", "q_out_file": "bench_out_file.lua"}


@dataclass
class Result:
    name: str
    messages: int
    wall: float
    cpu: float  # CPU seconds of the stage's process
    rss_kib: int


def _toml(out: Path, body: str, output_size: int, threads: int = 1) -> Path:
    cfg = out.parent / f"{out.name}.toml"
    cfg.write_text(f'output_path = "{out}"\noutput_size = {output_size}\nanalysis_threads = {threads}\n{body}')
    return cfg


def _gen(n: int) -> str:
    return f"""[input.bench_gen]
filename = "{WORKLOAD / 'input' / 'bench_gen.lua'}"
instruction_limit = 0
message_count = {n}
"""


def _run(cfg: Path) -> tuple[float, float, float, int]:
    """Run the kernel in batch mode in this process: (wall, self CPU, children CPU, peak RSS KiB)."""
    from hindsight_py.kernel.supervisor import Kernel, load_configuration

    hcfg, plugins = load_configuration(cfg)
    s0, c0 = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    code = Kernel(hcfg, plugins, batch=True, log_level=3).run()
    wall = time.perf_counter() - t0
    s1, c1 = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    if code:
        raise click.ClickException(f"{cfg.name}: hsp exited with {code}")
    self_cpu = (s1.ru_utime + s1.ru_stime) - (s0.ru_utime + s0.ru_stime)
    child_cpu = (c1.ru_utime + c1.ru_stime) - (c0.ru_utime + c0.ru_stime)
    return wall, self_cpu, child_cpu, max(s1.ru_maxrss, c1.ru_maxrss)


def _prefilled(base: Path, name: str, queue: Path) -> Path:
    out = base / name
    (out / "input").mkdir(parents=True)
    for f in queue.iterdir():
        os.link(f, out / "input" / f.name)
    return out


def run_workload(n: int, scenarios: list[str], output_size: int, threads: int) -> list[Result]:
    import logging

    from hindsight_py.kernel.logging import configure_logging

    configure_logging(3)
    logging.getLogger().setLevel(logging.ERROR)
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="hsp-bench-") as d:
        base = Path(d)
        marks = base / "marks"
        marks.mkdir()
        # input_only also fills the queue the q_* scenarios read.
        filled = base / "filled"
        wall, cpu, _, rss = _run(_toml(filled, _gen(n), output_size))
        if "input_only" in scenarios:
            results.append(Result("input_only", n, wall, cpu, rss))
        queue = filled / "input"
        for name in scenarios:
            if name in ANALYSIS:
                lua, matcher = ANALYSIS[name]
                out = _prefilled(base, name, queue)
                body = f"""[analysis.bench]
filename = "{WORKLOAD / 'analysis' / lua}"
message_matcher = "{matcher}"
"""
                wall, _, child, rss = _run(_toml(out, body, output_size, threads))
                results.append(Result(name, n, wall, child, rss))
            elif name in OUTPUTS:
                out = _prefilled(base, name, queue)
                body = f"""[output.bench]
filename = "{WORKLOAD / 'output' / OUTPUTS[name]}"
message_matcher = "TRUE"
read_queue = "input"
expected_count = {n}
output_file = "{base / (name + '.hpb')}"
"""
                wall, cpu, _, rss = _run(_toml(out, body, output_size))
                results.append(Result(name, n, wall, cpu, rss))
        if "q_work_pair" in scenarios:
            # Two bench_work plugins: with analysis_threads = 2 each worker gets one, which shows
            # how analysis scales across processes (compare wall time with --threads 1).
            out = _prefilled(base, "q_work_pair", queue)
            body = "".join(
                f"""[analysis.bench_{k}]
filename = "{WORKLOAD / 'analysis' / 'bench_work.lua'}"
message_matcher = "TRUE"
thread = {k}
"""
                for k in (0, 1)
            )
            wall, _, child, rss = _run(_toml(out, body, output_size, threads))
            results.append(Result("q_work_pair", 2 * n, wall, child, rss))
        if "pipe_true" in scenarios:
            out = base / "pipe_true"
            body = _gen(n) + f"""[analysis.bench_count]
filename = "{WORKLOAD / 'analysis' / 'bench_count.lua'}"
message_matcher = "TRUE"
[output.bench_out_count]
filename = "{WORKLOAD / 'output' / 'bench_out_count.lua'}"
message_matcher = "TRUE"
read_queue = "input"
expected_count = {n}
"""
            wall, cpu, child, rss = _run(_toml(out, body, output_size, threads))
            results.append(Result("pipe_true", n, wall, cpu + child, rss))
        shutil.rmtree(base, ignore_errors=True)
    return results


ALL = ["input_only", *ANALYSIS, *OUTPUTS, "q_work_pair", "pipe_true"]


@click.command("workload")
@click.option("-n", "count", type=int, default=1_000_000, show_default=True, help="Messages (bench_gen's message_count).")
@click.option("-s", "--scenario", "scenarios", multiple=True, type=click.Choice(ALL), help="Scenarios to run (default: all).")
@click.option("--output-size", type=int, default=1 << 30, show_default=True, help="Queue file size (Hindsight's figures: 1 GiB column).")
@click.option("--threads", type=int, default=1, show_default=True, help="analysis_threads for the analysis scenarios.")
def bench_workload(count: int, scenarios: tuple[str, ...], output_size: int, threads: int) -> None:
    """The standard workload's scenarios on hsp, beside real Hindsight's per-message figures."""
    chosen = list(scenarios) or ALL
    click.echo(f"machine: {machine_line()}")
    click.echo(f"N = {count:,}, output_size = {output_size:,}, analysis_threads = {threads}")
    click.echo(f"{'scenario':<12} {'µs/msg CPU':>11} {'msg/s':>11} {'Hindsight µs':>13} {'ratio':>6} {'wall s':>7} {'peak RSS MiB':>13}")
    for r in run_workload(count, chosen, output_size, threads):
        us = r.cpu / r.messages * 1e6
        hs = HINDSIGHT_US.get(r.name)
        ratio = f"{hs / us:5.2f}x" if hs else "     -"
        hs_txt = f"{hs:.2f}" if hs else "-"
        click.echo(f"{r.name:<12} {us:>11.3f} {r.messages / r.cpu:>11,.0f} {hs_txt:>13} {ratio:>6} {r.wall:>7.2f} {r.rss_kib / 1024:>13.1f}")
    click.echo("ratio = Hindsight µs / hsp µs (1.00x = as fast as Hindsight; >= 0.50x is the target)")
    click.echo("pipe_true: CPU of all processes; Hindsight: 3.37 µs/msg whole-process, 429k msg/s wall")
    click.echo("q_work_pair: two bench_work plugins (messages counted per plugin); compare wall with --threads 1 and 2")
