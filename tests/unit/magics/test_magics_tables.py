"""The %rbd and %ceph magics on the fake cluster (tests/fakes/ceph.py): every command's own
example parses, and as a dry run -- by flag and by the shared default -- changes nothing;
the commands that only read run for real. (tests/integration/test_dry_run_contract.py does
the same for every tool against the real sandbox and libvirtd.)"""
import copy

import pytest

import rbdnb
from rbdnb.base.plan import Plan
from rbdnb.magics import TABLES
from tests.unit.magics.conftest import run

CEPH_TOOLS = [t for t in TABLES if t.tool in ("rbd", "ceph")]
COMMANDS = [(t, words) for t in CEPH_TOOLS for words in t.commands]


@pytest.fixture
def world(cluster, fake_ceph, tmp_path):
    rbdnb.create_pool(cluster, "p")
    rbdnb.create_image(cluster, "p/img", "16M")
    rbdnb.create_snapshot(cluster, "p/img@snap")
    rbdnb.create_snapshot(cluster, "p/img@prot")
    rbdnb.protect_snapshot(cluster, "p/img@prot")
    rbdnb.create_image(cluster, "p/lone", "8M")
    rbdnb.clone(cluster, "p/img@prot", "p/cl")
    rbdnb.create_user(cluster, "u", ["p"])
    raw = tmp_path / "disk.raw"
    raw.write_bytes(b"\1" * (1 << 20))
    return {"pool": "p", "image": "img", "snap": "snap", "protected": "prot", "lone": "lone",
            "clone": "cl", "file": str(raw), "outfile": str(tmp_path / "out.raw"),
            "vm": "vm", "lvpool": "lp", "user": "u", "conf": fake_ceph.conf,
            "uri": "test:///default", "peer_conf": fake_ceph.conf}


@pytest.fixture
def ip(shell, world):
    return shell


def state(fake_ceph):
    return copy.deepcopy((fake_ceph.store.pools, fake_ceph.store.users))


@pytest.mark.parametrize("table, words", COMMANDS,
                         ids=[f"{t.tool} {' '.join(w)}" for t, w in COMMANDS])
def test_every_example_as_a_dry_run_changes_nothing(ip, fake_ceph, world, table, words):
    line = f"%{table.tool} {table.examples[words].format(**world)}"
    before = state(fake_ceph)
    if words in table.mutating:
        assert isinstance(run(ip, f"{line} --dry-run"), (Plan, str)), line
        run(ip, "%config RbdnbMagics.dry_run = True")
        assert isinstance(run(ip, line), (Plan, str)), line
    else:
        run(ip, line)  # only reads: for real
    assert state(fake_ceph) == before, line


def test_a_mutating_command_acts_without_dry_run(ip, fake_ceph):
    run(ip, "%rbd create p/new 32")  # a bare size is MiB, as rbd reads it
    assert fake_ceph.store.pools["p"].images["new"].size == 32 << 20
    frame = run(ip, "%rbd ls p")
    assert "new" in list(frame["name"])


@pytest.mark.parametrize("make, values, made", [
    (lambda c: __import__("rbdnb.widgets").widgets.create_image_form(c, pool="p"),
     {"name": "from-form", "size": "8M"}, ["from-form"]),
    (lambda c: __import__("rbdnb.widgets").widgets.clone_form(c),
     {"parent": "p/img@prot", "pattern": "p/form-{i}", "count": 3},
     ["form-1", "form-2", "form-3"]),
], ids=["create_image_form", "clone_form"])
def test_forms_plan_as_a_dry_run_and_act_when_asked(cluster, fake_ceph, world, make, values,
                                                    made):
    from rbdnb.base.settings import settings
    before = state(fake_ceph)
    try:
        for flag, default in ((True, False), (None, True)):
            settings.dry_run = default  # the shared default (what %config sets)
            form = make(cluster)
            for name, value in values.items():
                form.fields[name].value = value
            if flag is not None:
                form.dry_run.value = flag
            assert form.dry_run.value is True and not form.run_button.disabled
            form.run_button.click()
            assert form.error is None and isinstance(form.result, Plan), form.error
        assert state(fake_ceph) == before
        settings.dry_run = False
        form = make(cluster)
        for name, value in values.items():
            form.fields[name].value = value
        form.run_button.click()
        assert form.error is None, form.error
        assert set(made) <= set(fake_ceph.store.pools["p"].images)
    finally:
        settings.dry_run = False
