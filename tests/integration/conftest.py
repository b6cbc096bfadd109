"""A real sandbox for the whole test session: started once in a temp dir, stopped at the end."""
import json
import os
import subprocess

import pytest

from tests.conftest import start_sandbox


def pytest_terminal_summary(terminalreporter):
    from conformance import runner
    if runner.SUMMARY:
        terminalreporter.section("conformance: doc command lines as magics")
        for line in runner.SUMMARY:
            terminalreporter.write_line(line)


def pytest_collection_modifyitems(items):
    for item in items:
        if "tests/integration" in str(item.fspath):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def sandbox(tmp_path_factory):
    # Two libvirt hosts (a fleet, somewhere to migrate to) and two sites (RBD mirroring).
    box = start_sandbox(tmp_path_factory.mktemp("sandbox"), osd_size="4G", hosts=2, sites=2)
    yield box
    box.down()


@pytest.fixture
def cli(sandbox):
    """Run a real Ceph/libvirt CLI against the sandbox and return its JSON or text."""
    env = {**os.environ, **sandbox.env()}

    def run(*argv, json_out=False, check=True, timeout=60):
        argv = list(argv) + (["--format", "json"] if json_out else [])
        proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout)
        if check and proc.returncode != 0:
            raise AssertionError(f"{' '.join(argv)} failed: {proc.stderr.strip()}")
        return json.loads(proc.stdout) if json_out else proc
    return run


@pytest.fixture(scope="session")
def cluster(sandbox):
    """One rbdnb connection to the session's sandbox, as client.admin."""
    import rbdnb
    with rbdnb.connect(str(sandbox.conf_path)) as conn:  # the conf names the keyring
        yield conn


_pool_counter = [0]


@pytest.fixture
def pool(cluster, request):
    """A fresh RBD pool for one test, deleted afterwards."""
    import rbdnb
    _pool_counter[0] += 1
    name = f"t{_pool_counter[0]}-{request.node.name[5:25].replace('[', '-').strip('-_]')}"
    name = "".join(ch if ch.isalnum() or ch in "-_" else "-" for ch in name)
    rbdnb.create_pool(cluster, name, 8)
    yield name
    rbdnb.delete_pool(cluster, name, confirm=True, missing_ok=True)


@pytest.fixture
def cluster_state(cli):
    """A snapshot of pools, images and users, to prove that a refused call changed nothing."""
    def take():
        pools = cli("ceph", "osd", "pool", "ls", json_out=True)
        images = {p: sorted(cli("rbd", "ls", p, json_out=True)) for p in pools
                  if p != "device_health_metrics"}
        users = sorted(e["entity"] for e in cli("ceph", "auth", "ls", json_out=True)["auth_dump"])
        return {"pools": sorted(pools), "images": images, "users": users}
    return take
