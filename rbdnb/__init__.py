"""rbdnb: Jupyter runbooks for Ceph RBD with QEMU and libvirt.

The core library knows nothing of IPython; magics, widgets, the CLI and the
runbooks are thin front ends over it.
"""

from .errors import (CommandFailed, InvalidArgument, MissingTool, NotWritable, PortInUse,
                     RbdnbError, SandboxError, SandboxNotRunning, Timeout)
from .sandbox import Sandbox

__version__ = "0.1.0"

__all__ = ["CommandFailed", "InvalidArgument", "MissingTool", "NotWritable", "PortInUse",
           "RbdnbError", "Sandbox", "SandboxError", "SandboxNotRunning", "Timeout",
           "__version__"]
