"""The exceptions rbdnb raises.

Every error rbdnb raises derives from :class:`RbdnbError`, and its message is
one line that names the object concerned and what is allowed. No message ever
holds a cephx key. librados/librbd errors are translated at the boundary
(:func:`rbdnb.ceph.translate.translated`) by errno, never by message text.

    RbdnbError
    ├── InvalidArgument          a name, spec, size or option is malformed; nothing changed
    │   └── ParameterError       a runbook parameter is not valid (named as in the notebook)
    ├── ConfirmationRequired     a destructive operation was not confirmed; nothing changed
    ├── Conflict                 the object exists with other properties than asked for
    ├── NotFound
    │   ├── PoolNotFound
    │   ├── ImageNotFound
    │   ├── SnapshotNotFound
    │   ├── UserNotFound
    │   └── DomainNotFound       no libvirt domain of that name
    ├── Exists
    │   ├── PoolExists
    │   ├── ImageExists
    │   ├── SnapshotExists
    │   ├── UserExists
    │   └── DomainExists         a libvirt domain of that name is defined already
    ├── ImageBusy                the image is open elsewhere (watchers, a lock)
    ├── Locked                   another rbdnb process is doing the same thing; it did not end in time
    ├── ImageHasSnapshots        removing an image that still has snapshots
    ├── ImageHasChildren         removing or unprotecting what clones depend on
    ├── SnapshotProtected        removing a protected snapshot
    ├── PermissionDenied         cephx caps do not allow it
    ├── ClusterFull              the cluster or pool is full or out of quota
    ├── Timeout                  a daemon did not answer in time (also an unreachable cluster)
    ├── CephError                any other librados/librbd error, with its errno
    ├── LibvirtError             any other libvirt error, with its error code
    ├── CommandFailed            an external program exited non-zero
    └── SandboxError             the embedded cluster could not be started or used
        ├── MissingTool          a program is not installed (names the Debian package)
        ├── PortInUse            a port asked for is taken by something else
        ├── NotWritable          the sandbox directory cannot be written
        └── SandboxNotRunning    the sandbox is not up
"""

from __future__ import annotations

import re

_MORE_FIXES = re.compile(r"\{fix:(\w+)(?:=([^{}]*))?\}")

class RbdnbError(Exception):
    """Base of every error rbdnb raises.

    A message may say how to go on with a keyword of the call that raised it: it holds
    ``{fix}`` and the error carries ``fix=(keyword, value)``. ``str(error)`` words it for
    Python (``pass confirm=True``); a front end words it in its own terms with
    :meth:`worded` (the magics: ``add --yes``), so a user reads the flag they can type.
    """

    def __init__(self, message: str = "", *args, fix: tuple[str, object] | None = None):
        super().__init__(message, *args)
        self.fix = fix

    def worded(self, spell=None) -> str:
        """The message with its ``{fix}`` in the words of ``spell(keyword, value)``
        (a front end's), or Python's when ``spell`` is None or does not know the keyword.
        A message may name further fixes as ``{fix:keyword=value}`` (see :attr:`template`)."""
        text = str(self.args[0]) if self.args else ""

        def words(keyword, value):
            said = spell(keyword, value) if spell is not None else None
            return said or python_words(keyword, value)

        if self.fix is not None and "{fix}" in text:
            text = text.replace("{fix}", words(*self.fix))

        def more(match):
            value = match.group(2)
            return words(match.group(1), True if value == "True" else value)
        return _MORE_FIXES.sub(more, text)

    @property
    def template(self) -> str:
        """The message as raised, its fixes not yet worded (``{fix:keyword=value}``): to
        wrap it in another error's message, which a front end then words as a whole."""
        text = str(self.args[0]) if self.args else ""
        if self.fix is not None:
            keyword, value = self.fix
            text = text.replace("{fix}", "{fix:" + keyword +
                                ("" if value is None else f"={value}") + "}")
        return text

    def __str__(self) -> str:
        return self.worded()


def python_words(keyword: str, value: object) -> str:
    """How a fix reads for a caller of the Python API."""
    if keyword == "free_space":
        pool = value or "POOL"
        return (f"free space with rbdnb.free_space(cluster, ['{pool}/IMAGE', ...], "
                f"confirm=True)")
    return f"pass {keyword}={value!r}"


class InvalidArgument(RbdnbError, ValueError):
    """A name, spec, size or parameter is malformed; nothing was changed."""


class ConfirmationRequired(RbdnbError):
    """A destructive operation needs ``confirm=True``; nothing was changed."""


def require_confirmation(confirm: object, consequence: str) -> None:
    """Go on only with ``confirm=True`` itself (not merely something truthy), else say what
    would be lost: ``ConfirmationRequired("<consequence>: pass confirm=True to do it")``
    (each front end words the fix its own way: ``add --yes`` in a magic)."""
    if confirm is not True:
        raise ConfirmationRequired(f"{consequence}: {{fix}} to do it", fix=("confirm", True))


class Conflict(RbdnbError):
    """The object already exists, with other properties than those asked for."""


class NotFound(RbdnbError, LookupError):
    """The object does not exist."""


class PoolNotFound(NotFound):
    """No pool of that name."""


class ImageNotFound(NotFound):
    """No image of that name (in that pool and namespace)."""


class SnapshotNotFound(NotFound):
    """No snapshot of that name on the image."""


class UserNotFound(NotFound):
    """No cephx user of that name."""


class Exists(RbdnbError):
    """The object exists already."""


class PoolExists(Exists):
    """A pool of that name exists already."""


class ImageExists(Exists):
    """An image of that name exists already."""


class SnapshotExists(Exists):
    """A snapshot of that name exists already."""


class UserExists(Exists):
    """A cephx user of that name exists already (with other caps than asked for)."""


class ImageBusy(RbdnbError):
    """The image is in use by another client."""


class ImageHasSnapshots(RbdnbError):
    """The image still has snapshots."""


class ImageHasChildren(RbdnbError):
    """Clones depend on this image or snapshot."""


class SnapshotProtected(RbdnbError):
    """The snapshot is protected."""


class Locked(RbdnbError):
    """Another process is doing the same thing to the same object, and did not finish in time."""


class PermissionDenied(RbdnbError, PermissionError):
    """The cephx user's caps do not allow the operation."""


class ClusterFull(RbdnbError):
    """The cluster, an OSD or the pool is full, or a quota is reached."""


class Timeout(RbdnbError, TimeoutError):
    """A daemon or program did not answer within the time allowed."""


class CephError(RbdnbError):
    """Any other error from librados or librbd."""

    def __init__(self, message: str, errno: int | None = None, *, fix=None):
        super().__init__(message, fix=fix)
        self.errno = errno


class DomainNotFound(NotFound):
    """No libvirt domain of that name."""


class DomainExists(Exists):
    """A libvirt domain of that name is defined already."""


class LibvirtError(RbdnbError):
    """Any other error libvirt reported, with its error code (libvirt errors are mapped by
    code, never by message text)."""

    def __init__(self, message: str, code: int | None = None):
        super().__init__(message)
        self.code = code


class ParameterError(InvalidArgument):
    """A runbook parameter is not valid: named as the notebook names it."""


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

    def __init__(self, program: str, package: str | None = None, *, how: str | None = None):
        # A Debian package to install, or (for what a script of rbdnb's makes) how to make it.
        fix = how or f"install the Debian package {package} (apt-get install {package})"
        super().__init__(f"{program} not found: {fix}")
        self.program = program
        self.package = package


class PortInUse(SandboxError):
    """A port that was asked for is already taken."""


class NotWritable(SandboxError):
    """The sandbox directory cannot be created or written."""


class SandboxNotRunning(SandboxError):
    """The sandbox is not up."""
