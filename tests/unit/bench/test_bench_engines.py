"""The engine registry and what each engine plans, on the fake cluster (a dry run: the
plan is the equivalent command line, nothing runs)."""
import shutil

import pytest

import rbdnb
from tests.conftest import require_services
from rbdnb import bench
from rbdnb.bench.cases import ENGINES, make_case
from rbdnb.bench.engines import REGISTRY


def test_the_registry_has_every_engine_by_name():
    assert tuple(REGISTRY) == ENGINES == bench.ENGINES
    assert all(REGISTRY[name].name == name for name in ENGINES)
    case = make_case("native", "randwrite", "4K", 16, "64M", None, 50)
    assert REGISTRY["native"].client_for(case) == "librbd C API, writearound cache"
    big = make_case("native", "write", "4M", 16, "64M", None, 50)
    assert REGISTRY["native"].client_for(big) == "librbd C API, no cache, zero-copy"


def test_a_dry_run_matrix_plans_each_engine_and_changes_nothing(cluster, fake_ceph):
    if not (shutil.which("rbd") and shutil.which("fio")):
        require_services("the rbd and fio programs (scripts/setup.sh installs them)")
    rbdnb.create_pool(cluster, "p")
    rbdnb.create_image(cluster, "p/bench", "64M")
    plan = bench.matrix(cluster, "p/bench", engines=list(ENGINES), io_types=["randread"],
                        io_sizes=["4K"], queue_depths=[4], total="8M", dry_run=True)
    text = str(plan)
    assert "pre-fill p/bench first" in text
    assert "native: randread 4K x 8M at queue depth 4" in text
    assert "bench --io-type read --io-size 4096B --io-threads 4" in text
    assert "--io-pattern rand p/bench" in text and "fio " in text
    assert "rbdnb.bench.prefilled" not in fake_ceph.store.pools["p"].images["bench"].metadata
    with pytest.raises(rbdnb.InvalidArgument, match="engine 'dd' is not valid"):
        bench.matrix(cluster, "p/bench", engines=["dd"], dry_run=True)
