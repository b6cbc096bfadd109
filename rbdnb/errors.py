"""The exceptions rbdnb raises.

Every error rbdnb raises derives from :class:`RbdnbError`, and its message is
one line that names the object concerned and what is allowed. No message ever
holds a cephx key.

    RbdnbError
    ├── InvalidArgument          a name, spec, size or option is malformed
    ├── Timeout                  a daemon did not answer within the time allowed
    ├── CommandFailed            an external program exited non-zero
    └── SandboxError             the embedded cluster could not be started or used
        ├── MissingTool          a program is not installed (names the Debian package)
        ├── PortInUse            a port asked for is taken by something else
        ├── NotWritable          the sandbox directory cannot be written
        └── SandboxNotRunning    the sandbox is not up
"""

from __future__ import annotations


class RbdnbError(Exception):
    """Base of every error rbdnb raises."""


class InvalidArgument(RbdnbError, ValueError):
    """A name, spec, size or parameter is malformed; nothing was changed."""


class Timeout(RbdnbError, TimeoutError):
    """A daemon or program did not answer within the time allowed."""


class CommandFailed(RbdnbError):
    """An external program exited with a non-zero status."""

    def __init__(self, message: str, *, argv: list[str] | None = None,
                 returncode: int | None = None, stderr: str = ""):
        super().__init__(message)
        self.argv = argv or []
        self.returncode = returncode
        self.stderr = stderr


class SandboxError(RbdnbError):
    """The embedded Ceph + libvirt sandbox could not be started, stopped or read."""


class MissingTool(SandboxError):
    """A program rbdnb needs is not installed."""

    def __init__(self, program: str, package: str):
        super().__init__(f"{program} not found: install the Debian package {package} "
                         f"(apt-get install {package}), or run scripts/setup.sh")
        self.program = program
        self.package = package


class PortInUse(SandboxError):
    """A port that was asked for is already taken."""


class NotWritable(SandboxError):
    """The sandbox directory cannot be created or written."""


class SandboxNotRunning(SandboxError):
    """The sandbox is not up."""
