"""Secrets (cephx keys) that never show.

A :class:`Secret`'s ``repr``, ``str`` and ``format`` are redacted, it refuses to
be pickled or serialised, and the key comes out only through :meth:`reveal`,
which rbdnb calls where the key must go (libvirt's API, a 0600 keyring file).
"""

from __future__ import annotations

import hmac
import re

# A cephx secret is 28 bytes (u16 type, u32 s, u32 ns, u16 length, 16 bytes): 40 base64
# characters, and with type 1 (AES) it starts with "AQ".
KEY_PATTERN = re.compile(r"AQ[A-Za-z0-9+/]{36}==")


class Secret:
    """A cephx key. Shows as ``Secret(client.NAME, redacted)`` wherever it is printed."""

    __slots__ = ("_value", "entity")

    def __init__(self, value: str, entity: str):
        if not isinstance(value, str) or not KEY_PATTERN.fullmatch(value):
            raise ValueError(f"the value given for {entity} is not a cephx key")
        object.__setattr__(self, "_value", value)
        object.__setattr__(self, "entity", entity)

    def reveal(self) -> str:
        """The key itself. Pass it straight to where it must go; never print or log it."""
        return self._value

    def __setattr__(self, name, value):
        raise AttributeError("Secret is immutable")

    def __repr__(self) -> str:
        return f"Secret({self.entity}, redacted)"

    __str__ = __repr__

    def __format__(self, spec: str) -> str:
        return repr(self)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        return hmac.compare_digest(self._value, other._value)

    def __hash__(self) -> int:
        return hash((Secret, self.entity))

    def __reduce__(self):
        raise TypeError("a Secret cannot be pickled")

    def _repr_html_(self) -> str:
        return f"<code>{repr(self)}</code>"


def redact(text: str) -> str:
    """``text`` with anything shaped like a cephx key replaced."""
    return KEY_PATTERN.sub("[cephx key redacted]", text)
