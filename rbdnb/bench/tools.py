"""The external engines: ``rbd bench`` and fio's ``rbd`` ioengine.

Each has a command builder (an argument list, no shell, no key on it) and a
parser of the tool's output; the parsers are pure functions, tested on
recorded outputs. ``rbd bench`` prints a human-formatted bytes column, so
bandwidth is computed from its ``ops/sec`` and the I/O size.
"""

from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass

from ..errors import CommandFailed


@dataclass
class ToolRun:
    """What one external run measured (latencies in microseconds, nan if not given)."""

    ops: int
    read_ops: int
    bytes: int
    seconds: float
    lat_mean_us: float = math.nan
    lat_p50_us: float = math.nan
    lat_p99_us: float = math.nan
    lat_max_us: float = math.nan


# -- rbd bench --------------------------------------------------------------------------------
def rbd_bench_args(image_path: str, *, io_type: str, io_size: int, queue_depth: int,
                   total: int, rw_mix_read: int, cli_args: list[str],
                   timeout: float) -> list[str]:
    """The ``rbd bench`` command line for one run (``io_type`` as rbdnb names it)."""
    kind = {"read": "read", "randread": "read", "write": "write", "randwrite": "write",
            "mixed": "readwrite"}[io_type]
    pattern = "full-seq" if io_type in ("read", "write") else "rand"
    t = str(int(max(1, timeout)))
    args = ["rbd", *cli_args, f"--rados-osd-op-timeout={t}", f"--rados-mon-op-timeout={t}",
            f"--client-mount-timeout={t}", "bench", "--io-type", kind,
            "--io-size", f"{io_size}B", "--io-threads", str(queue_depth),
            "--io-total", f"{total}B", "--io-pattern", pattern]
    if kind == "readwrite":
        args += ["--rw-mix-read", str(rw_mix_read)]
    return args + [image_path]


_RBD_TOTAL = re.compile(r"^elapsed:\s*(\d+)\s+ops:\s*(\d+)\s+ops/sec:\s*([\d.]+)", re.M)
_RBD_READS = re.compile(r"^read_ops:\s*(\d+)", re.M)
_RBD_TICK = re.compile(r"^\s*(\d+)\s+(\d+)\s+[\d.]+\s+\S+", re.M)


def parse_rbd_bench(text: str, io_size: int) -> ToolRun:
    """Parse ``rbd bench`` output: the final ``elapsed: … ops: … ops/sec: …`` line.

    ``elapsed`` is printed in whole seconds; the exact span is ``ops / ops/sec``.
    """
    match = _RBD_TOTAL.search(text)
    if not match:
        last = text.strip().splitlines()[-1] if text.strip() else "no output"
        raise CommandFailed(f"rbd bench printed no result line: {last}")
    ops, rate = int(match.group(2)), float(match.group(3))
    if ops <= 0 or rate <= 0:
        raise CommandFailed(f"rbd bench did no I/O: {match.group(0)}")
    reads = _RBD_READS.search(text)
    if reads:
        read_ops = int(reads.group(1))
    else:
        read_ops = ops if re.search(r"^bench\s+type read\b", text, re.M) else 0
    return ToolRun(ops=ops, read_ops=read_ops, bytes=ops * io_size, seconds=ops / rate)


# -- fio -----------------------------------------------------------------------------------
def fio_args(pool: str, image: str, *, client: str, io_type: str, io_size: int,
             queue_depth: int, image_size: int, total: int | None, seconds: float | None,
             rw_mix_read: int) -> list[str]:
    """The fio command line for one run of its ``rbd`` ioengine (JSON output)."""
    rw = {"read": "read", "write": "write", "randread": "randread", "randwrite": "randwrite",
          "mixed": "randrw"}[io_type]
    args = ["fio", "--name=rbdnb", "--ioengine=rbd", f"--clientname={client}",
            f"--pool={pool}", f"--rbdname={image}", f"--rw={rw}", f"--bs={io_size}",
            f"--iodepth={queue_depth}", f"--size={image_size}", "--lat_percentiles=1",
            "--percentile_list=50:99", "--output-format=json", "--randrepeat=0",
            "--end_fsync=1"]
    if rw == "randrw":
        args.append(f"--rwmixread={rw_mix_read}")
    if seconds is not None:
        args += [f"--runtime={seconds:g}", "--time_based=1"]
    else:
        args.append(f"--io_size={total}")
    return args


def parse_fio(text: str) -> ToolRun:
    """Parse ``fio --output-format=json``: IOPS, bytes, mean and percentile latency.

    For a mixed run the reads and writes are summed, the mean latency is
    weighted by I/O count, and p99 is the larger of the two directions' p99.
    """
    start = text.find("{")
    if start < 0:
        last = text.strip().splitlines()[-1] if text.strip() else "no output"
        raise CommandFailed(f"fio printed no JSON: {last}")
    try:
        data = json.loads(text[start:])
        job = data["jobs"][0]
    except (ValueError, KeyError, IndexError) as exc:
        raise CommandFailed(f"fio printed unreadable JSON: {exc}") from None
    if job.get("error"):
        raise CommandFailed(f"fio failed: error {job['error']} ({os.strerror(job['error'])})")
    ops = read_ops = nbytes = 0
    lat_weighted = 0.0
    p50 = p99 = lat_max = math.nan
    runtime_ms = 0
    for direction in ("read", "write"):
        d = job.get(direction) or {}
        n = int(d.get("total_ios", 0))
        if n <= 0:
            continue
        ops += n
        if direction == "read":
            read_ops = n
        nbytes += int(d.get("io_bytes", 0))
        runtime_ms = max(runtime_ms, int(d.get("runtime", 0)))
        lat = d.get("lat_ns") or {}
        lat_weighted += float(lat.get("mean", 0.0)) * n
        pct = lat.get("percentile") or (d.get("clat_ns") or {}).get("percentile") or {}
        d50, d99 = _pct(pct, 50), _pct(pct, 99)
        p50 = d50 if math.isnan(p50) else max(p50, d50)
        p99 = d99 if math.isnan(p99) else max(p99, d99)
        lat_max = float(lat.get("max", math.nan)) if math.isnan(lat_max) else \
            max(lat_max, float(lat.get("max", math.nan)))
    if ops <= 0 or runtime_ms <= 0:
        raise CommandFailed("fio did no I/O")
    # fio reports a percentile as the value of the histogram bin it falls in, which can lie
    # above the exact maximum it also reports; no percentile is above the maximum.
    p50, p99 = min(p50, lat_max), min(p99, lat_max)
    return ToolRun(ops=ops, read_ops=read_ops, bytes=nbytes, seconds=runtime_ms / 1000,
                   lat_mean_us=lat_weighted / ops / 1e3, lat_p50_us=p50 / 1e3,
                   lat_p99_us=p99 / 1e3, lat_max_us=lat_max / 1e3)


def _pct(percentiles: dict, which: float) -> float:
    for key, value in percentiles.items():
        try:
            if abs(float(key) - which) < 1e-9:
                return float(value)
        except ValueError:
            continue
    return math.nan


def conf_with(conf_text: str, section: str, options: dict[str, str]) -> str:
    """``conf_text`` with ``options`` set in ``[section]`` (added if missing).

    fio's rbd engine reads only a conf file (``$CEPH_CONF``), so the client
    settings rbdnb gives every engine (timeouts, the rbd CLI's cache setting,
    a keyring path) reach it through a copy of the conf.
    """
    lines = conf_text.splitlines()
    wanted = {k.replace(" ", "_").lower() for k in options}
    out, in_section, inserted = [], False, False
    header = re.compile(r"^\s*\[([^\]]+)\]\s*$")
    for line in lines:
        m = header.match(line)
        if m:
            in_section = m.group(1).strip() == section
            out.append(line)
            if in_section and not inserted:
                out += [f"\t{k} = {v}" for k, v in options.items()]
                inserted = True
            continue
        if in_section:
            key = line.split("=", 1)[0].strip().replace(" ", "_").lower()
            if "=" in line and key in wanted:
                continue  # ours replaces it
        out.append(line)
    if not inserted:
        out += ["", f"[{section}]", *[f"\t{k} = {v}" for k, v in options.items()]]
    return "\n".join(out) + "\n"
