"""The libvirt connection: the default URI, a bounded connect with keepalives (a daemon
that stops answering ends calls instead of hanging them), the event loop they need, and
libvirt errors turned into rbdnb's by error code."""

from __future__ import annotations

import functools
import os
import re
import threading

from ..base import paths
from ..errors import (DomainNotFound, InvalidArgument,
                      LibvirtError, NotFound, RbdnbError, Timeout)


def _translate(exc, what: str) -> RbdnbError:
    import libvirt
    code = exc.get_error_code()
    if code == libvirt.VIR_ERR_NO_DOMAIN:
        return DomainNotFound(f"{what}: no such domain")
    if code in (libvirt.VIR_ERR_NO_SECRET, libvirt.VIR_ERR_NO_STORAGE_POOL,
                libvirt.VIR_ERR_NO_STORAGE_VOL):
        return NotFound(f"{what} not found")
    if code in (libvirt.VIR_ERR_NO_CONNECT, libvirt.VIR_ERR_SYSTEM_ERROR,
                getattr(libvirt, "VIR_ERR_RPC", 39)):
        return Timeout(f"{what}: libvirt is not reachable ({(exc.get_error_message() or '').splitlines()[0][:160]})")
    message = (exc.get_error_message() or str(exc)).splitlines()[0][:300]
    return LibvirtError(f"{what}: {message}", code)


class translated:
    """``with translated("domain vm1"):`` turns libvirtError into rbdnb errors."""

    def __init__(self, what: str):
        self.what = what

    def __enter__(self):
        return self

    def __exit__(self, kind, exc, tb):
        import libvirt
        if exc is not None and isinstance(exc, libvirt.libvirtError):
            raise _translate(exc, self.what) from exc
        return False


def find(lookup, *args, missing: int):
    """``lookup(*args)``, or None when libvirt answers that the object does not exist
    (error code ``missing``); any other error is raised."""
    import libvirt
    try:
        return lookup(*args)
    except libvirt.libvirtError as exc:
        if exc.get_error_code() != missing:
            raise
        return None


# What an unprivileged user's libvirt (qemu:///session) cannot do; the runbooks need none of it.
SESSION_LIMITS = ("skipped as unprivileged (qemu:///session): VMs run as this user with no "
                  "libvirt networks, bridges or host devices (those need qemu:///system); "
                  "nothing in the runbooks uses them")


def default_uri() -> str:
    """The sandbox's libvirt URI: $LIBVIRT_DEFAULT_URI, else system as root, session otherwise."""
    return os.environ.get("LIBVIRT_DEFAULT_URI") or paths.default_libvirt_uri()


_EVENT_LOOP_LOCK = threading.Lock()


@functools.cache
def _event_loop() -> threading.Thread:
    """libvirt's default event loop, run by a daemon thread (keepalives need one); started
    once per process.

    Also silences libvirt's default error handler, which prints every error to
    stderr: rbdnb raises its own one-line errors instead.
    """
    import libvirt
    libvirt.registerErrorHandler(lambda ctx, err: None, None)
    libvirt.virEventRegisterDefaultImpl()

    def run():
        while True:
            libvirt.virEventRunDefaultImpl()

    thread = threading.Thread(target=run, name="libvirt-events", daemon=True)
    thread.start()
    return thread


def _ensure_event_loop() -> None:
    with _EVENT_LOOP_LOCK:  # two threads connecting at once start one loop
        _event_loop()


CONNECT_TIMEOUT = 15.0


def check_uri(uri: object) -> str:
    """A libvirt URI: ``driver[+transport]://[host]/path[?query]``, no markup or spaces."""
    if not isinstance(uri, str) or not re.fullmatch(r"[a-z][a-z0-9+.-]*://[^\s<>&\"']*", uri):
        raise InvalidArgument(f"libvirt URI {uri!r} is not valid: expected e.g. qemu:///system "
                              f"or qemu:///session")
    return uri


def connect_libvirt(uri: str | None = None, *, keepalive: int = 5,
                    timeout: float = CONNECT_TIMEOUT):
    """Open a libvirt connection within ``timeout`` s; keepalives then close it if the
    daemon stops answering, so no call on it blocks forever either.

    A daemon that does not answer (stopped, frozen, gone) gives :class:`Timeout`.
    """
    import libvirt
    _ensure_event_loop()
    uri = check_uri(uri or default_uri())
    if uri == "qemu:///system":
        # The system daemon is never started on demand: without it, say so at once. (The
        # session daemon is: libvirt's client starts one for qemu:///session.)
        from ..base.proc import unix_socket_answers
        if not unix_socket_answers(paths.libvirt_daemons(uri).libvirtd_socket):
            raise Timeout(f"libvirtd is not serving {uri}: start it (rbdnb sandbox up)")

    def open_():
        with translated(f"libvirt {uri}"):
            conn = libvirt.open(uri)
            # A daemon that misses 3 keepalives 5 s apart is taken as gone: calls then fail
            # instead of blocking forever. In-process drivers (test:///) have no daemon.
            try:
                conn.setKeepAlive(keepalive, 3)
            except libvirt.libvirtError as exc:
                if exc.get_error_code() != libvirt.VIR_ERR_NO_SUPPORT:
                    raise
        return conn

    from ..base.proc import bounded
    return bounded(open_, timeout, f"libvirt {uri} (libvirtd does not answer: is it stopped "
                                   f"or frozen? rbdnb sandbox status tells)",
                   on_late=lambda conn: conn.close())


def reachable(uri: str | None = None, *, timeout: float = 5.0) -> bool:
    """Whether a libvirt daemon serving ``uri`` answers a question within ``timeout`` s.

    A frozen daemon still accepts connections on its socket; this asks it its version.
    For qemu:///system and qemu:///session the socket is checked first, so asking never
    makes libvirt's client start a session daemon.
    """
    uri = uri or default_uri()
    if uri in ("qemu:///system", "qemu:///session"):
        from ..base.proc import unix_socket_answers
        if not unix_socket_answers(paths.libvirt_daemons(uri).libvirtd_socket):
            return False
    try:
        conn = connect_libvirt(uri, timeout=timeout)
    except RbdnbError:
        return False
    from ..base.proc import bounded
    try:
        bounded(conn.getLibVersion, timeout, f"libvirt {uri}")
        return True
    except Exception:
        return False
    finally:
        close_quietly(conn)


def close_quietly(conn, timeout: float = 5.0) -> None:
    """Close a libvirt connection without waiting long for a daemon that does not answer."""
    from ..base.proc import bounded
    try:
        bounded(conn.close, timeout, "closing a libvirt connection")
    except Exception:
        pass
