"""Benchmarks on the sandbox: every engine, cross-checked with the rbd CLI."""
import json
import subprocess
import sys

import pandas as pd
import pytest

import rbdnb
from rbdnb import bench, widgets

POOL = "bench-it"
IMAGE = f"{POOL}/img"


@pytest.fixture(scope="module")
def image(cluster):
    rbdnb.create_pool(cluster, POOL, 8, exist_ok=True)
    rbdnb.create_image(cluster, IMAGE, "512M", exist_ok=True)
    yield IMAGE
    rbdnb.delete_pool(cluster, POOL, confirm=True)


def test_every_engine_runs_a_small_matrix_and_they_agree(cluster, image, cli):
    df = bench.matrix(cluster, image, engines=["native", "rbd", "fio"],
                      io_types=["randwrite", "randread"], io_sizes=["4K", "64K"],
                      queue_depths=[16], total="32M")
    assert len(df) == 12 and list(df.columns) == bench.COLUMNS
    assert (df.iops > 0).all() and (df.ops == 32 * 1024**2 // df.io_size_bytes).all()
    assert ((df.mib_s - df.iops * df.io_size_bytes / 2**20).abs() < 1e-6 * df.mib_s).all()
    assert (df.fsid == cli("ceph", "fsid").stdout.strip()).all()
    # latencies from the engines that measure them, none invented for rbd bench
    assert df[df.engine != "rbd"].lat_mean_us.gt(0).all()
    assert df[df.engine != "rbd"].eval("lat_p50_us <= lat_p99_us <= lat_max_us").all()
    assert df[df.engine == "rbd"].lat_mean_us.isna().all()
    # Ratios are figures, not behaviour: a busy machine moves them (bench compare prints
    # them); the table of ratios is complete and positive.
    ratios = bench.ratios(df, "rbd", "iops")
    assert ratios.notna().all().all() and ratios.gt(0).all().all(), ratios
    # reads read data: the image was pre-filled once, which rbd itself sees
    meta = cli("rbd", "image-meta", "get", image, bench.PREFILL_KEY).stdout.strip()
    assert meta == str(512 * 1024**2)
    du = cli("rbd", "du", image, json_out=True)["images"][0]
    assert du["used_size"] == du["provisioned_size"]
    # the native engine closed its image: no watcher is left behind
    assert cli("rbd", "status", image, json_out=True)["watchers"] == []


@pytest.mark.parametrize("engine", bench.ENGINES)
def test_timed_and_mixed_runs(cluster, image, engine):
    timed = bench.run(cluster, image, engine, "randwrite", "4K", 8, seconds=1.5)
    assert timed.ops > 0 and timed.seconds >= 1.0, timed  # ran for its time, at least
    mixed = bench.run(cluster, image, engine, "mixed", "4K", 8, total="8M", rw_mix_read=70)
    assert mixed.ops == 2048 and mixed.rw_mix_read == 70
    assert str(mixed).startswith(f"{engine} mixed 4K QD8 on {image}:")


def test_sequential_4m_writes(cluster, image):
    df = bench.matrix(cluster, image, ["rbd", "native", "fio"], ["write"], ["4M"], [16],
                      total="1G", repeat=2)
    rates = df.groupby("engine").mib_s.median().to_dict()
    assert set(rates) == {"rbd", "native", "fio"} and all(v > 0 for v in rates.values())
    assert (df.bytes == 1 << 30).all()  # each engine wrote the whole 1G


def test_bad_input_is_refused_and_changes_nothing(cluster, image, cli, cluster_state):
    rbdnb.create_image(cluster, f"{POOL}/fresh", "16M", exist_ok=True)
    before = cluster_state()
    cases = [
        (dict(spec=f"{POOL}/nope"), rbdnb.ImageNotFound, f"image {POOL}/nope not found"),
        (dict(spec="nopool/img"), rbdnb.PoolNotFound, "pool nopool not found"),
        (dict(io_size="128M", spec=f"{POOL}/fresh"), rbdnb.InvalidArgument, "too large"),
        (dict(io_size="32M", total="64M", spec=f"{POOL}/fresh"), rbdnb.InvalidArgument,
         "larger than image"),
        (dict(io_type="randread", queue_depth=0, spec=f"{POOL}/fresh"), rbdnb.InvalidArgument,
         "queue depth 0"),
        (dict(io_type="randread", engine="dd", spec=f"{POOL}/fresh"), rbdnb.InvalidArgument,
         "engine 'dd'"),
    ]
    for kwargs, kind, text in cases:
        spec = kwargs.pop("spec")
        with pytest.raises(kind) as err:
            bench.run(cluster, spec, **kwargs)
        assert text in str(err.value) and "\n" not in str(err.value)
    assert cluster_state() == before
    # the refused read runs did not pre-fill the fresh image
    assert bench.PREFILL_KEY not in cli("rbd", "image-meta", "list", f"{POOL}/fresh").stdout
    plan = bench.run(cluster, f"{POOL}/fresh", "rbd", "randread", dry_run=True)
    assert "pre-fill" in str(plan) and "rbd --conf" in plan.lines[0]
    assert bench.PREFILL_KEY not in cli("rbd", "image-meta", "list", f"{POOL}/fresh").stdout


def test_cli_runs_saves_and_plots(sandbox, image, tmp_path):
    out, png = tmp_path / "r.parquet", tmp_path / "r.png"
    proc = subprocess.run([sys.executable, "-m", "rbdnb", "bench", "matrix", "--conf",
                           str(sandbox.conf_path), image, "-e", "native", "rbd", "-q", "1", "8",
                           "--total", "8M", "-o", str(out), "--plot", str(png), "--json"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(proc.stdout)
    assert len(rows) == 4 and {r["engine"] for r in rows} == {"native", "rbd"}
    assert len(bench.load(str(out))) == 4
    assert png.read_bytes()[:4] == b"\x89PNG"
    bad = subprocess.run([sys.executable, "-m", "rbdnb", "bench", "run", "--conf",
                          str(sandbox.conf_path), image, "-t", "sideways"],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 1 and "io type 'sideways' is not valid" in bad.stderr


def test_magic_and_form(sandbox, cluster, image):
    from IPython.core.interactiveshell import InteractiveShell
    shell = InteractiveShell.instance()
    shell.run_cell("%load_ext rbdnb", store_history=False)
    assert shell.run_cell(f"%rbdnb connect --conf {sandbox.conf_path}").success
    res = shell.run_cell(f"%rbd bench {image} --io-type write --io-pattern rand "
                         f"--io-total 8M --engine native rbd", store_history=False)
    assert res.success, res.error_in_exec
    assert isinstance(res.result, pd.DataFrame) and list(res.result.engine) == ["native", "rbd"]
    assert (res.result.io_type == "randwrite").all()
    one = shell.run_cell(f"%rbd bench {image} --io-type readwrite --io-total 4M "
                         f"--io-threads 4", store_history=False)
    assert one.success and isinstance(one.result, bench.BenchResult)
    assert one.result.io_type == "mixed" and one.result.queue_depth == 4
    bad = shell.run_cell(f"%rbd bench {image} --io-type write --io-size 5Q",
                         store_history=False)
    assert "io size '5Q' is not valid" in str(bad.error_in_exec)

    form = widgets.bench_form(cluster)
    assert form.run_button.disabled and "give the image" in form.status.value
    form.fields["image"].value = image
    form.fields["total"].value = "8M"
    assert not form.run_button.disabled
    assert "rbd --conf" in "".join(o["data"]["text/plain"] for o in form.plan.outputs)
    form.run_button.click()
    assert form.error is None, form.error
    assert len(form.result.value) == 2 and form.bar.value == form.bar.max == 2
    kinds = [k for o in form.output.outputs for k in o.get("data", {})]
    assert "image/png" in kinds
