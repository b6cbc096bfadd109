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

from .ceph.cluster import Cluster, Preflight, connect, preflight
from .ceph.clones import children, clone, clone_many, flatten
from .errors import (CephError, ClusterFull, CommandFailed, ConfirmationRequired, Conflict,
                     Exists, ImageBusy, ImageExists, ImageHasChildren, ImageHasSnapshots,
                     ImageNotFound, InvalidArgument, Locked, MissingTool, NotFound, NotWritable,
                     PermissionDenied, PoolExists, PoolNotFound, PortInUse, RbdnbError,
                     SandboxError, SandboxNotRunning, SnapshotExists, SnapshotNotFound,
                     SnapshotProtected, Timeout, UserExists, UserNotFound)
from .ceph.images import (ImageInfo, create_image, disk_usage, du, image_info, image_names,
                          list_images, remove_image, rename_image, resize_image)
from .base.plan import Plan, Result
from .ceph.pools import create_pool, delete_pool, list_pools
from .sandbox import Sandbox
from .base.secret import Secret
from .ceph.space import free_space
from .ceph.snapshots import (create_snapshot, list_snapshots, protect_snapshot,
                             purge_snapshots, remove_snapshot, rollback_snapshot,
                             unprotect_snapshot)
from .base.specs import ImageSpec, parse_spec
from .ceph.transfer import (Verification, checksum_file, checksum_image, copy_image,
                            export_image, import_image, verify_image)
from .base.units import format_size, parse_size
from .ceph.users import create_user, delete_user, get_key, list_users, rbd_caps, write_keyring

# Modules of the API used by name: rbdnb.virt.attach_rbd, rbdnb.qemu.convert, rbdnb.guest.build,
# rbdnb.mirror.failover
from . import virt
from .ceph import mirror, qemu
from .virt import guest

__version__ = "0.1.0"

__all__ = [
    "CephError", "Cluster", "ClusterFull", "CommandFailed", "ConfirmationRequired",
    "Conflict", "Exists", "ImageBusy", "ImageExists", "ImageHasChildren",
    "ImageHasSnapshots", "ImageInfo", "ImageNotFound", "ImageSpec", "InvalidArgument",
    "Locked", "MissingTool", "NotFound", "NotWritable", "PermissionDenied", "Plan",
    "PoolExists", "PoolNotFound", "PortInUse", "Preflight", "RbdnbError", "Result",
    "Sandbox", "SandboxError", "SandboxNotRunning", "Secret", "SnapshotExists",
    "SnapshotNotFound", "SnapshotProtected", "Timeout", "UserExists", "UserNotFound",
    "Verification", "checksum_file", "checksum_image", "children", "clone", "clone_many",
    "connect", "copy_image", "create_image", "create_pool", "create_snapshot",
    "create_user", "delete_pool", "delete_user", "disk_usage", "du", "export_image",
    "flatten", "format_size", "free_space", "get_key", "guest", "image_info", "image_names",
    "import_image", "list_images", "list_pools", "list_snapshots", "list_users",
    "mirror", "parse_size", "parse_spec", "preflight", "protect_snapshot", "purge_snapshots", "qemu",
    "rbd_caps", "remove_image", "remove_snapshot", "rename_image", "resize_image",
    "rollback_snapshot", "unprotect_snapshot", "verify_image", "virt", "write_keyring",
]


def load_ipython_extension(shell):
    """``%load_ext rbdnb``: the magics and the output guard (see rbdnb.magics)."""
    from .magics import load_ipython_extension as load
    load(shell)
