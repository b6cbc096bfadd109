"""rbdnb: Jupyter runbooks for Ceph RBD with QEMU and libvirt.

The core library knows nothing of IPython; magics, widgets, the CLI and the
runbooks are thin front ends over it. Functions take the connection first::

    import rbdnb
    with rbdnb.connect() as cluster:              # the running sandbox by default
        rbdnb.create_pool(cluster, "libvirt-pool", exist_ok=True)
        rbdnb.create_image(cluster, "libvirt-pool/golden", "10G")
        rbdnb.create_snapshot(cluster, "libvirt-pool/golden@base")
        rbdnb.clone_many(cluster, "libvirt-pool/golden@base", "libvirt-pool/vm-{i:03d}", count=100)
"""

from .cluster import Cluster, Preflight, connect, preflight
from .clones import children, clone, clone_many, flatten
from .errors import (CephError, ClusterFull, CommandFailed, ConfirmationRequired, Conflict,
                     Exists, ImageBusy, ImageExists, ImageHasChildren, ImageHasSnapshots,
                     ImageNotFound, InvalidArgument, Locked, MissingTool, NotFound, NotWritable,
                     PermissionDenied, PoolExists, PoolNotFound, PortInUse, RbdnbError,
                     SandboxError, SandboxNotRunning, SnapshotExists, SnapshotNotFound,
                     SnapshotProtected, Timeout, UserExists, UserNotFound)
from .images import (ImageInfo, copy_image, create_image, disk_usage, du, image_info,
                     image_names, list_images, remove_image, rename_image, resize_image)
from .plan import Plan, Result
from .pools import create_pool, delete_pool, list_pools
from .sandbox import Sandbox
from .secret import Secret
from .space import free_space
from .snapshots import (create_snapshot, list_snapshots, protect_snapshot, purge_snapshots,
                        remove_snapshot, rollback_snapshot, unprotect_snapshot)
from .specs import ImageSpec, parse_spec
from .transfer import (Verification, checksum_file, checksum_image, export_image, import_image,
                       verify_image)
from .units import format_size, parse_size
from .users import create_user, delete_user, get_key, list_users, rbd_caps, write_keyring

from . import guest, qemu, virt  # noqa: E402  (rbdnb.virt.attach_rbd, rbdnb.qemu.convert, ...)

__version__ = "0.1.0"

__all__ = [name for name in dir() if not name.startswith("_")]


def load_ipython_extension(shell):
    """``%load_ext rbdnb``: the magics and the output guard (see rbdnb.magics)."""
    from .magics import load_ipython_extension as load
    load(shell)
