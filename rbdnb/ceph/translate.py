"""Translating librados/librbd errors into rbdnb's, at the boundary.

Branches on errno only. The rados and rbd modules are imported lazily so that
the parts of rbdnb that do not talk to Ceph import without them.
"""

from __future__ import annotations

import contextlib
import errno as E
import os

from .. import errors


def _errno_of(exc: BaseException) -> int | None:
    code = getattr(exc, "errno", None)
    if isinstance(code, int):
        return abs(code)
    return None


def translate(exc: BaseException, what: str, *,
              not_found: type[errors.NotFound] = errors.NotFound,
              exists: type[errors.Exists] = errors.Exists,
              busy: type[errors.RbdnbError] = errors.ImageBusy) -> errors.RbdnbError:
    """The rbdnb error for a librados/librbd exception raised while doing ``what``.

    ``what`` names the object, e.g. ``"image rbd/vm-1"``; the message is one line.
    """
    code = _errno_of(exc)
    if code == E.ENOENT:
        return not_found(f"{what} not found")
    if code == E.EEXIST:
        return exists(f"{what} already exists")
    if code == E.EBUSY:
        return busy(f"{what} is busy: it is in use (open by a client, has watchers, or "
                    f"clones depend on it)")
    if code == E.ENOTEMPTY:
        return errors.ImageHasSnapshots(f"{what} has snapshots")
    if code in (E.EPERM, E.EACCES):
        return errors.PermissionDenied(f"{what}: permission denied (the cephx user's caps "
                                       f"do not allow this)")
    if code in (E.ENOSPC, E.EDQUOT):
        return errors.ClusterFull(f"{what}: the cluster or pool is full: {{fix}}",
                                  fix=("free_space", None))
    if code == E.ETIMEDOUT:
        return errors.Timeout(f"{what}: the cluster did not answer in time")
    if code == E.EINVAL:
        return errors.InvalidArgument(f"{what}: invalid argument")
    if code == E.EROFS:
        return errors.CephError(f"{what} is read-only", code)
    reason = os.strerror(code) if code else type(exc).__name__
    return errors.CephError(f"{what}: {reason}", code)


@contextlib.contextmanager
def translated(what: str, **kinds):
    """Run the body, turning librados/librbd errors into rbdnb errors about ``what``."""
    try:
        yield
    except errors.RbdnbError:
        raise
    except Exception as exc:
        if type(exc).__module__ not in ("rados", "rbd"):
            raise  # not librados/librbd's: a local error keeps its own type
        raise translate(exc, what, **kinds) from exc
