"""The setup's first job until the runbooks exist: create and list an RBD image.

Uses librados/librbd on the sandbox: makes pool ``rbd`` (and initialises it for
RBD) and image ``rbd/rbdnb-smoke`` if they are missing, then lists the pool.
Running it again changes nothing and says so.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from .errors import SandboxError

POOL = "rbd"
IMAGE = "rbdnb-smoke"
SIZE = 64 * 1024**2


@dataclass
class SmokeResult:
    pool: str
    image: str
    changed: list[str]
    images: list[str]

    def summary(self) -> str:
        what = ", ".join(self.changed) if self.changed else "unchanged"
        return (f"smoke: {what}; images in pool {self.pool}: {', '.join(self.images)}")


def run_smoke(conf: str, keyring: str, timeout: int = 30) -> SmokeResult:
    import rados
    import rbd

    changed = []
    cluster = rados.Rados(conffile=conf, rados_id="admin", conf={"keyring": keyring})
    cluster.connect(timeout=timeout)
    try:
        if not cluster.pool_exists(POOL):
            ret, _, errs = cluster.mon_command(json.dumps(
                {"prefix": "osd pool create", "pool": POOL, "format": "json"}), b"",
                timeout=timeout)
            if ret != 0:
                raise SandboxError(f"creating pool {POOL} failed: {errs}")
            changed.append(f"created pool {POOL}")
        with cluster.open_ioctx(POOL) as ioctx:
            if ioctx.application_list() == []:
                rbd.RBD().pool_init(ioctx, False)
                changed.append(f"initialised pool {POOL} for rbd")
            if IMAGE not in rbd.RBD().list(ioctx):
                rbd.RBD().create(ioctx, IMAGE, SIZE)
                changed.append(f"created image {POOL}/{IMAGE} (64M)")
            images = sorted(rbd.RBD().list(ioctx))
    finally:
        cluster.shutdown()
    return SmokeResult(POOL, IMAGE, changed, images)
