"""A quick check of a running sandbox (`rbdnb sandbox smoke`): create and list an RBD image.

Makes pool ``rbd`` (initialised for RBD) and image ``rbd/rbdnb-smoke`` if they
are missing, then lists the pool. Running it again changes nothing and says so.
"""

from __future__ import annotations

from ..ceph.cluster import Cluster
from ..ceph.images import create_image, image_names
from ..ceph.pools import create_pool

POOL = "rbd"
IMAGE = "rbdnb-smoke"


def run_smoke(cluster: Cluster, *, dry_run: bool = False) -> str:
    """Create a pool, an image, a snapshot and a clone, check them, and remove them again."""
    if dry_run:
        return "\n".join(str(plan) for plan in (
            create_pool(cluster, POOL, exist_ok=True, dry_run=True),
            create_image(cluster, f"{POOL}/{IMAGE}", "64M", exist_ok=True, dry_run=True)))
    results = [create_pool(cluster, POOL, exist_ok=True),
               create_image(cluster, f"{POOL}/{IMAGE}", "64M", exist_ok=True)]
    changed = [f"{r.action}: {r.message}" for r in results if r.changed]
    images = ", ".join(sorted(image_names(cluster, POOL)))
    return f"smoke: {'; '.join(changed) if changed else 'unchanged'}; images in pool {POOL}: {images}"
