import os

import pytest
from hypothesis import HealthCheck, settings

# Machines here have 2 cores and other work beside the tests: a property test asserts
# behaviour, never how fast an example ran.
settings.register_profile("rbdnb", deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("rbdnb")


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def require_services(missing: str) -> None:
    """A missing service fails the test in CI; elsewhere it skips with the reason."""
    if in_ci():
        pytest.fail(f"CI needs the real services: {missing}")
    pytest.skip(missing)


def start_sandbox(directory, **kwargs):
    """A sandbox of a test's own, up and healthy (a missing service fails in CI, else skips)."""
    from rbdnb.errors import MissingTool
    from rbdnb.sandbox import Sandbox
    box = Sandbox(directory, **kwargs)
    try:
        status = box.up()
    except MissingTool as exc:
        require_services(str(exc))
    assert status.healthy, status.summary()
    return box


@pytest.fixture
def guest_dir():
    """A directory for a guest built by root for libvirt's QEMU user: others may traverse it."""
    import shutil
    import tempfile
    path = tempfile.mkdtemp(prefix="rbdnb-test-guest-", dir="/var/tmp")
    os.chmod(path, 0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)
