"""%rbd accepts rbd's own forms on the fake cluster: -p/--pool, --image, --snap (both
spellings), a bare image name in pool "rbd", the aliases; an unknown command names the
closest one."""
import pytest
from IPython.core.error import UsageError

import rbdnb
from tests.unit.magics.conftest import run


@pytest.fixture
def ip(cluster, shell):
    rbdnb.create_pool(cluster, "p")
    rbdnb.create_pool(cluster, "rbd")
    rbdnb.create_image(cluster, "p/img", "16M")
    rbdnb.create_snapshot(cluster, "p/img@s")
    return shell


@pytest.mark.parametrize("line", [
    "info p/img", "info -p p img", "-p p info img", "info --pool p --image img",
    "info --pool=p --image=img", "--pool p info --image img"])
def test_the_ways_rbd_names_an_image(ip, line):
    assert run(ip, f"%rbd {line}").spec == "p/img"


@pytest.mark.parametrize("line", ["info p/img@s", "info -p p --image img --snap s",
                                  "info -p p img --snap=s"])
def test_the_ways_rbd_names_a_snapshot(ip, line):
    info = run(ip, f"%rbd {line}")
    assert info.spec == "p/img" and info.snapshot_count == 1


def test_a_bare_name_is_in_pool_rbd_and_aliases_work(ip, fake_ceph):
    run(ip, "%rbd create --size 8M bare")
    assert "bare" in fake_ceph.store.pools["rbd"].images
    assert "bare" in list(run(ip, "%rbd list")["name"])
    assert "img" in list(run(ip, "%rbd list -p p")["name"])
    run(ip, "%rbd copy p/img p/img2")
    run(ip, "%rbd rename p/img2 p/img3")
    run(ip, "%rbd remove p/img3 --yes")
    assert sorted(fake_ceph.store.pools["p"].images) == ["img"]
    assert list(run(ip, "%rbd snap list p/img")["name"]) == ["s"]


def test_export_keeps_a_file_name_as_it_is(ip, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    plan = run(ip, "%rbd export -p p img out.raw --dry-run")
    assert "out.raw" in str(plan) and "rbd/out.raw" not in str(plan)


@pytest.mark.parametrize("line, suggestion", [
    ("lst p", "%rbd (ls|list)"), ("infoo p/img", "%rbd info"),
    ("snap lst p/img", "%rbd snap (ls|list)"), ("remov p/img", "%rbd remove"),
    ("snap creat p/img@x", "%rbd snap create")])
def test_an_unknown_command_names_the_closest(ip, line, suggestion):
    with pytest.raises(UsageError, match=f"did you mean {suggestion}"):
        run(ip, f"%rbd {line}")
