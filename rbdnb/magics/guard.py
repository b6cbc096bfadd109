"""Keeping cephx keys out of everything an IPython kernel shows or writes.

Every path out of a kernel is covered, not only ``print`` and ``display``:

* in a Jupyter kernel, every message the kernel sends goes through one
  ``Session.send``; rbdnb wraps it, so streams (including what subprocesses write to
  file descriptors 1 and 2, which ipykernel forwards), rich output, a cell's last
  expression (``execute_result``), tracebacks (``error``) and replies are redacted
  before they leave. Papermill saves what it received after each cell, so the
  notebook on disk never holds a key either, before any final scrub;
* a key split across two stream messages is caught by holding back a trailing
  fragment that could start a key until the next message (at the latest the kernel's
  ``idle`` status at the end of the cell);
* what ipykernel echoes to the kernel's own stdout/stderr (the server's log) goes
  through a redacting pipe;
* in a terminal IPython, stdout, stderr, ``display`` and the display hook are wrapped.
"""

from __future__ import annotations

import io
import os
import re
import sys
import threading

from ..base.secret import KEY_PATTERN, redact

# The start of a key that the rest of the text does not finish: held back for a moment.
_PARTIAL_KEY = re.compile(r"AQ[A-Za-z0-9+/]{0,36}={0,1}\Z")


def redact_deep(value):
    """``value`` (JSON-like: dicts, lists, strings) with every key-shaped string redacted."""
    if isinstance(value, str):
        return redact(value) if "AQ" in value else value
    if isinstance(value, dict):
        return {k: redact_deep(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(redact_deep(v) for v in value)
    return value


class SessionRedactor:
    """Wraps ``session.send`` of a kernel: nothing leaves holding a key."""

    def __init__(self, session):
        self.session = session
        self.inner = session.send
        self.lock = threading.RLock()
        self.held: dict = {}   # (id(stream), name) -> [socket, text, parent, ident, topic...]

    def install(self) -> None:
        self.session.send = self.send
        self.session._rbdnb_redactor = self

    def _split(self, text: str) -> tuple[str, str]:
        text = redact(text)
        m = _PARTIAL_KEY.search(text)
        if m is None or KEY_PATTERN.fullmatch(m.group(0)):
            return text, ""
        return text[:m.start()], text[m.start():]

    def _flush_held(self) -> None:
        held, self.held = self.held, {}
        for stream, msg, ident, text in held.values():
            fresh = self.session.msg("stream", {**msg["content"], "text": redact(text)},
                                     parent=msg.get("parent_header"))
            self.inner(stream, fresh, ident=ident)

    def send(self, stream, msg_or_type, content=None, parent=None, ident=None, buffers=None,
             track=False, header=None, metadata=None):
        with self.lock:
            if isinstance(msg_or_type, dict):
                msg = dict(msg_or_type)
                msg["content"] = redact_deep(msg.get("content"))
                msg_type = msg.get("header", {}).get("msg_type") or msg.get("msg_type")
                if msg_type == "stream" and isinstance(msg["content"], dict):
                    key = (id(stream), msg["content"].get("name"))
                    previous = self.held.pop(key, None)
                    text = (previous[3] if previous else "") + msg["content"].get("text", "")
                    now, later = self._split(text)
                    result = None
                    if later:
                        self.held[key] = (stream, msg, ident, later)
                    if now:
                        msg["content"] = {**msg["content"], "text": now}
                        result = self.inner(stream, msg, ident=ident, buffers=buffers,
                                            track=track)
                    return result if result is not None else msg
                self._flush_held()
                return self.inner(stream, msg, content, parent, ident, buffers, track,
                                  header, metadata)
            self._flush_held()
            return self.inner(stream, msg_or_type, redact_deep(content), parent, ident,
                              buffers, track, header, redact_deep(metadata))


class _RedactingPipe:
    """A pipe onto file descriptor ``fd`` that forwards what it gets, redacted, line by line
    (a line that does not end is flushed after a short pause)."""

    def __init__(self, fd: int):
        self.target = os.dup(fd)
        read, write = os.pipe()
        os.dup2(write, fd)
        os.close(write)
        self.read = read
        threading.Thread(target=self._pump, name="rbdnb-redact-fd", daemon=True).start()

    def _pump(self) -> None:
        import select
        buf = b""
        while True:
            ready, _, _ = select.select([self.read], [], [], 0.2)
            if ready:
                chunk = os.read(self.read, 65536)
                if not chunk:
                    break
                buf += chunk
                *lines, buf = buf.split(b"\n")
                if lines:
                    self._write(b"\n".join(lines) + b"\n")
                if len(buf) < 65536:
                    continue
            if buf:
                self._write(buf)
                buf = b""
        if buf:
            self._write(buf)

    def _write(self, data: bytes) -> None:
        text = redact(data.decode(errors="replace")).encode()
        try:
            os.write(self.target, text)
        except OSError:
            pass


def _guard_kernel_echo(stream) -> None:
    """ipykernel copies what subprocesses write on fd 1/2 to the kernel's own output (the
    server's log): put a redacting pipe on that copy."""
    fd = getattr(stream, "_original_stdstream_copy", None)
    if isinstance(fd, int) and not getattr(stream, "_rbdnb_echo_guarded", False):
        try:
            _RedactingPipe(fd)
            stream._rbdnb_echo_guarded = True
        except OSError:
            pass


def install(shell) -> None:
    """Redact every output path of ``shell`` (an IPython shell, in a kernel or not)."""
    kernel = getattr(shell, "kernel", None)
    session = getattr(kernel, "session", None)
    if session is not None and not hasattr(session, "_rbdnb_redactor"):
        SessionRedactor(session).install()
        for name in ("stdout", "stderr"):
            _guard_kernel_echo(getattr(sys, name))
    # Terminal IPython (and belt and braces in a kernel): display, the display hook, streams.
    pub = shell.display_pub
    if not getattr(pub, "_rbdnb_guarded", False):
        original = pub.publish

        def publish(data, metadata=None, *args, **kwargs):
            return original(redact_deep(data), metadata, *args, **kwargs)

        pub.publish = publish
        pub._rbdnb_guarded = True
    hook = shell.displayhook
    if not getattr(hook, "_rbdnb_guarded", False):
        write_format_data = hook.write_format_data

        def guarded(format_dict, md_dict=None):
            return write_format_data(redact_deep(format_dict), md_dict)

        hook.write_format_data = guarded
        hook._rbdnb_guarded = True
    _guard_streams()
    if not getattr(shell, "_rbdnb_stream_hook", False):
        shell.events.register("pre_run_cell", lambda *args: _guard_streams())
        shell._rbdnb_stream_hook = True


def _guard_streams() -> None:
    for name in ("stdout", "stderr"):
        stream = getattr(sys, name)
        if not getattr(stream, "_rbdnb_guarded", False):
            setattr(sys, name, GuardedStream(stream))


class GuardedStream(io.TextIOBase):
    """A text stream that redacts what is written to it."""

    def __init__(self, inner):
        self._inner = inner
        self._rbdnb_guarded = True

    def write(self, text):
        return self._inner.write(redact(text))

    def flush(self):
        return self._inner.flush()

    def __getattr__(self, name):
        return getattr(self._inner, name)
