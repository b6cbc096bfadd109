"""The one way rbdnb waits for something: ask a condition until it holds or a bound passes.

Every wait in rbdnb has a bound (a daemon that never answers must not hang a notebook);
the caller turns "not within the bound" into its own typed error, naming what it waited for.
"""

from __future__ import annotations

import time
from typing import Callable, TypeVar

T = TypeVar("T")


def wait_until(condition: Callable[[], T], timeout: float, *, interval: float = 0.2) -> T | None:
    """Call ``condition()`` every ``interval`` seconds until it returns something true,
    and return that; return None once ``timeout`` seconds have passed (the condition is
    asked at least once, and once more at the bound). Exceptions from it propagate."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        time.sleep(min(interval, left))
