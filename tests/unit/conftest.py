import pytest

from tests.fakes.ceph import FakeCeph


@pytest.fixture
def fake_ceph(tmp_path, monkeypatch):
    """The fake Ceph plugged in where the real bindings plug in (tests/fakes/ceph.py); rbdnb's
    locks and journal owner records go to a private runtime dir."""
    monkeypatch.setenv("RBDNB_RUNTIME_DIR", str(tmp_path / "run"))
    return FakeCeph(tmp_path).install(monkeypatch)


@pytest.fixture
def cluster(fake_ceph):
    import rbdnb
    with rbdnb.connect(fake_ceph.conf) as c:
        yield c
