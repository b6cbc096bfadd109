import os

import pytest


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def require_services(missing: str) -> None:
    """A missing service fails the test in CI; elsewhere it skips with the reason."""
    if in_ci():
        pytest.fail(f"CI needs the real services: {missing}")
    pytest.skip(missing)
