"""A real sandbox for the whole test session: started once in a temp dir, stopped at the end."""
import json
import os
import subprocess

import pytest

from rbdnb.errors import MissingTool
from rbdnb.sandbox import Sandbox
from tests.conftest import require_services


def pytest_collection_modifyitems(items):
    for item in items:
        if "tests/integration" in str(item.fspath):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def sandbox(tmp_path_factory):
    box = Sandbox(tmp_path_factory.mktemp("sandbox"), osd_size="4G")
    try:
        status = box.up()
    except MissingTool as exc:
        require_services(str(exc))
    assert status.healthy, status.summary()
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
