"""rbdnb.bench without a cluster: parsers on recorded outputs, validation, plots, files."""
import json
import math
from pathlib import Path

import matplotlib
import pandas as pd
import pytest

matplotlib.use("Agg")

from rbdnb import bench# noqa: E402
from rbdnb.bench.native import _percentile  # noqa: E402
from rbdnb.bench.tools import (conf_with, fio_args, parse_fio, parse_rbd_bench,  # noqa: E402
                               rbd_bench_args)
from rbdnb.errors import CommandFailed, InvalidArgument  # noqa: E402

DATA = Path(__file__).parents[1] / "data" / "bench"


def recorded(name):
    return (DATA / name).read_text()


def test_rbd_bench_random_write_is_parsed_from_ops_per_second():
    run = parse_rbd_bench(recorded("rbd-bench-randwrite-4K.txt"), 4096)
    assert run.ops == 16384 and run.read_ops == 0
    # bytes come from the I/O size, not the human-formatted column
    assert run.bytes == 16384 * 4096
    line = [l for l in recorded("rbd-bench-randwrite-4K.txt").splitlines()
            if l.startswith("elapsed")][0]
    rate = float(line.split("ops/sec:")[1].split()[0])
    assert run.seconds == pytest.approx(16384 / rate)
    assert math.isnan(run.lat_mean_us)  # rbd bench gives no latencies


def test_rbd_bench_mixed_counts_reads_and_a_full_read_counts_all():
    mixed = parse_rbd_bench(recorded("rbd-bench-mixed-4K.txt"), 4096)
    assert mixed.ops == 8192 and mixed.read_ops == 5687
    read = parse_rbd_bench(recorded("rbd-bench-read-4M.txt"), 4 << 20)
    assert read.ops == read.read_ops == 256 and read.bytes == 1 << 30


@pytest.mark.parametrize("text", ["", "rbd: error opening image img: (2) No such file",
                                  "elapsed: 0   ops: 0   ops/sec: 0   bytes/sec: 0 B/s"])
def test_rbd_bench_without_a_result_is_an_error(text):
    with pytest.raises(CommandFailed):
        parse_rbd_bench(text, 4096)


def test_fio_json_gives_iops_bytes_and_latencies():
    data = json.loads(recorded("fio-randwrite-4K.json"))["jobs"][0]["write"]
    run = parse_fio(recorded("fio-randwrite-4K.json"))
    assert run.ops == data["total_ios"] == 8192 and run.read_ops == 0
    assert run.bytes == data["io_bytes"] == 32 << 20
    assert run.seconds == data["runtime"] / 1000
    assert run.lat_mean_us == pytest.approx(data["lat_ns"]["mean"] / 1000)
    assert run.lat_p99_us == data["lat_ns"]["percentile"]["99.000000"] / 1000
    assert 0 < run.lat_p50_us <= run.lat_p99_us <= run.lat_max_us


def test_fio_percentiles_from_bins_never_exceed_the_exact_max():
    # A CI run saw fio report a p99 above the max it measured (a 64K randwrite).
    data = json.loads(recorded("fio-randwrite-4K.json"))
    lat = data["jobs"][0]["write"]["lat_ns"]
    lat["percentile"]["99.000000"] = lat["max"] * 1.012
    run = parse_fio(json.dumps(data))
    assert run.lat_p99_us == run.lat_max_us == lat["max"] / 1000
    assert run.lat_p50_us == lat["percentile"]["50.000000"] / 1000


def test_fio_mixed_sums_directions_and_weights_the_mean():
    job = json.loads(recorded("fio-mixed-4K.json"))["jobs"][0]
    r, w = job["read"], job["write"]
    run = parse_fio(recorded("fio-mixed-4K.json"))
    assert run.ops == r["total_ios"] + w["total_ios"] and run.read_ops == r["total_ios"]
    expected = (r["lat_ns"]["mean"] * r["total_ios"] + w["lat_ns"]["mean"] * w["total_ios"]) \
        / run.ops / 1000
    assert run.lat_mean_us == pytest.approx(expected)
    assert run.lat_p99_us == max(r["lat_ns"]["percentile"]["99.000000"],
                                 w["lat_ns"]["percentile"]["99.000000"]) / 1000


def test_fio_errors_are_errors():
    with pytest.raises(CommandFailed, match="no JSON"):
        parse_fio("fio: rbd engine: failed to connect\n")
    broken = json.loads(recorded("fio-randwrite-4K.json"))
    broken["jobs"][0]["error"] = 5
    with pytest.raises(CommandFailed, match="error 5"):
        parse_fio(json.dumps(broken))


def test_command_lines_map_io_types_and_carry_no_secrets():
    argv = rbd_bench_args("p/img", io_type="mixed", io_size=4096, queue_depth=8, total=1 << 20,
                          rw_mix_read=70, cli_args=["--conf", "/c"], timeout=30)
    assert argv[argv.index("--io-type") + 1] == "readwrite"
    assert argv[argv.index("--io-pattern") + 1] == "rand" and "--rw-mix-read" in argv
    seq = rbd_bench_args("p/img", io_type="write", io_size=4096, queue_depth=8, total=1 << 20,
                         rw_mix_read=50, cli_args=[], timeout=30)
    assert seq[seq.index("--io-pattern") + 1] == "full-seq"
    fio = fio_args("p", "img", client="admin", io_type="mixed", io_size=4096, queue_depth=4,
                   image_size=1 << 30, total=None, seconds=5, rw_mix_read=70)
    assert "--rw=randrw" in fio and "--rwmixread=70" in fio and "--time_based=1" in fio
    assert "--end_fsync=1" in fio  # the flush is inside the measured span, as rbd bench's


def test_conf_with_sets_options_in_the_client_section():
    conf = "[global]\n\tfsid = x\n[client.admin]\n\tkeyring = /k\n\trbd cache writethrough " \
           "until flush = true\n"
    out = conf_with(conf, "client.admin", {"rbd_cache_writethrough_until_flush": "false"})
    assert out.count("[client.admin]") == 1
    assert "rbd_cache_writethrough_until_flush = false" in out and "= true" not in out
    assert "keyring = /k" in out
    added = conf_with("[global]\n\tfsid = x\n", "client.bob", {"keyring": "/b"})
    assert added.rstrip().endswith("[client.bob]\n\tkeyring = /b")


@pytest.mark.parametrize("kwargs, message", [
    (dict(engines=["dd"]), "engine 'dd' is not valid"),
    (dict(io_types=["rw"]), "io type 'rw' is not valid"),
    (dict(io_sizes=["4Q"]), "io size '4Q' is not valid"),
    (dict(io_sizes=["100B"]), "too small"),
    (dict(io_sizes=["128M"]), "too large"),
    (dict(queue_depths=[0]), "queue depth 0 is not valid"),
    (dict(queue_depths=[True]), "queue depth True is not valid"),
    (dict(total="1G", seconds=3), "not both"),
    (dict(total="6K"), "not a whole number of 4K I/Os"),
    (dict(seconds=0), "seconds 0 is not valid"),
    (dict(engines="native"), "expected a non-empty list"),
    (dict(engines=[]), "expected a non-empty list"),
    (dict(rw_mix_read=101), "read percentage 101 is not valid"),
])
def test_bad_parameters_are_refused_with_one_line(kwargs, message):
    with pytest.raises(InvalidArgument) as err:
        bench.validate(**kwargs)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_a_valid_matrix_counts_its_runs():
    assert bench.validate(["native", "rbd"], ["randwrite", "read"], ["4K", "4M"], [1, 16]) == 16


def test_percentile_is_nearest_rank():
    samples = list(range(1, 101))
    assert _percentile(samples, 50) == 50 and _percentile(samples, 99) == 99
    assert _percentile([7], 99) == 7 and math.isnan(_percentile([], 50))


def results_frame():
    rows = []
    for engine, factor in (("native", 1.0), ("rbd", 1.05), ("fio", 0.9)):
        for size, base in (("4K", 4096), ("64K", 65536), ("4M", 4 << 20)):
            for qd in (1, 16):
                iops = factor * qd * 1000 / (1 + base / 65536)
                rows.append({"engine": engine, "image": "p/i", "io_type": "randwrite",
                             "io_size": size, "io_size_bytes": base, "queue_depth": qd,
                             "rw_mix_read": 0, "ops": 100, "bytes": 100 * base, "seconds": 1.0,
                             "iops": iops, "mib_s": iops * base / 2**20,
                             "lat_mean_us": math.nan if engine == "rbd" else 100.0 * qd,
                             "lat_p50_us": math.nan, "lat_p99_us": math.nan if engine == "rbd"
                             else 300.0 * qd, "lat_max_us": math.nan, "client": engine,
                             "fsid": "f", "timestamp": "t"})
    return pd.DataFrame(rows, columns=bench.COLUMNS)


def test_plot_renders_to_png(tmp_path):
    df = results_frame()
    fig = bench.plot(df)
    assert len(fig.axes) == 3  # IOPS, MiB/s, p99 latency
    iops_axis = fig.axes[0]
    labels = {line.get_label() for line in iops_axis.get_lines()}
    assert labels == {f"{e} QD{q}" for e in ("native", "rbd", "fio") for q in (1, 16)}
    assert [t.get_text() for t in iops_axis.get_xticklabels()] == ["4K", "64K", "4M"]
    path = tmp_path / "bench.png"
    fig.savefig(path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 10_000
    ax = bench.plot(df[df.io_size == "4K"], x="queue_depth", metrics=("iops",))
    assert ax.figure is not None


def test_plot_skips_latency_no_engine_gave_and_refuses_non_results():
    df = results_frame()
    fig = bench.plot(df[df.engine == "rbd"])
    assert len(fig.axes) == 2
    with pytest.raises(InvalidArgument):
        bench.plot(pd.DataFrame({"a": [1]}))
    with pytest.raises(InvalidArgument):
        bench.plot(df, x="colour")


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_results_save_and_load(tmp_path, suffix):
    df = results_frame()
    path = bench.save(df, str(tmp_path / "sub" / f"results{suffix}"))
    back = bench.load(path)
    pd.testing.assert_frame_equal(back[["engine", "io_size", "queue_depth", "iops"]],
                                  df[["engine", "io_size", "queue_depth", "iops"]],
                                  check_dtype=False)
    with pytest.raises(InvalidArgument, match="must end in .csv or .parquet"):
        bench.save(df, str(tmp_path / "results.xlsx"))
    (tmp_path / "other.csv").write_text("a,b\n1,2\n")
    with pytest.raises(InvalidArgument, match="not a benchmark results file"):
        bench.load(str(tmp_path / "other.csv"))


def test_ratios_against_rbd_bench():
    table = bench.ratios(results_frame(), "rbd", "iops")
    assert set(table.columns) == {"native / rbd", "fio / rbd"}
    assert (table["native / rbd"] - 1 / 1.05).abs().max() < 1e-3
