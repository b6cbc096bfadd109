"""Numbers as people write them: sizes (``10G``, ``512M``, ``1.5T``) as bytes, and the one
range check for counts and seconds (:func:`check_int`, :func:`check_seconds`).

Units are binary, as in ``rbd`` and ``qemu-img``: ``K`` is 1024 bytes. ``KiB``,
``KB`` and ``k`` are accepted as spellings of the same unit.
"""

from __future__ import annotations

import math
import re
from decimal import Decimal, InvalidOperation

from ..errors import InvalidArgument

_UNITS = {"": 0, "B": 0, "K": 1, "M": 2, "G": 3, "T": 4, "P": 5, "E": 6}
_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGTPE]?)(I?B)?\s*$", re.IGNORECASE)
MAX_SIZE = 2**64 - 1


def check_int(value, what: str, low: int, high: int, *, error=InvalidArgument) -> int:
    """``value`` if it is a whole number from ``low`` to ``high`` (a bool is not), else
    ``error`` naming it: "<what> <value> is not valid: expected a whole number from .. to ..".
    """
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise error(f"{what} {value!r} is not valid: expected a whole number from {low} "
                    f"to {high}")
    return value


def check_seconds(value, what: str, maximum: float, *, error=InvalidArgument) -> float:
    """``value`` as float if it is a finite number of seconds, more than 0 and at most
    ``maximum`` (a bool is not), else ``error`` naming it."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or \
            not math.isfinite(value) or not 0 < value <= maximum:
        raise error(f"{what} {value!r} is not valid: expected seconds, more than 0 and at "
                    f"most {maximum:g}")
    return float(value)


def parse_size(text: str | int, *, what: str = "size", default_unit: str | None = None,
               minimum: int = 1, maximum: int = MAX_SIZE) -> int:
    """Return the number of bytes that ``text`` names (an ``int`` is bytes already).

    A string without a unit is refused unless ``default_unit`` is given, because
    the tools disagree: ``rbd --size 10`` means 10 MiB, ``qemu-img ... 10`` 10
    bytes. The result must be a whole number of bytes between ``minimum`` and
    ``maximum``; anything else raises :class:`InvalidArgument` naming the value.
    """
    allowed = "a size such as 10G, 512M or 1.5T"
    if isinstance(text, bool):
        raise InvalidArgument(f"{what} {text!r} is not valid: expected {allowed}")
    if isinstance(text, int):
        value = text
    else:
        if not isinstance(text, str):
            raise InvalidArgument(f"{what} {text!r} is not valid: expected {allowed}")
        match = _SIZE_RE.match(text)
        if not match:
            raise InvalidArgument(f"{what} {text!r} is not valid: expected {allowed}")
        number, unit, suffix = match.groups()
        unit = unit.upper()
        if not unit and not suffix:
            if default_unit is None:
                raise InvalidArgument(f"{what} {text!r} has no unit: write e.g. {number}M or "
                                      f"{number}G (or {number}B for bytes)")
            unit = default_unit.upper().rstrip("IB") or ""
        if suffix and suffix.upper() == "IB" and not unit:
            raise InvalidArgument(f"{what} {text!r} is not valid: expected {allowed}")
        try:
            exact = Decimal(number) * (1024 ** _UNITS[unit])
        except InvalidOperation:  # pragma: no cover - the regex admits only digits
            raise InvalidArgument(f"{what} {text!r} is not valid: expected {allowed}") from None
        if exact != exact.to_integral_value():
            raise InvalidArgument(f"{what} {text!r} is not a whole number of bytes")
        value = int(exact)
    if value < minimum:
        raise InvalidArgument(f"{what} {text!r} is too small: the least allowed is "
                              f"{format_size(minimum)}")
    if value > maximum:
        raise InvalidArgument(f"{what} {text!r} is too large: the most allowed is "
                              f"{format_size(maximum)}")
    return value


def format_size(nbytes: int) -> str:
    """Render a byte count in the largest binary unit that divides it, else with one decimal."""
    if nbytes < 1024:
        return f"{nbytes}B"
    for unit in "EPTGMK":
        scale = 1024 ** _UNITS[unit]
        if nbytes >= scale:
            if nbytes % scale == 0:
                return f"{nbytes // scale}{unit}"
            return f"{nbytes / scale:.1f}{unit}"
    return f"{nbytes}B"  # pragma: no cover
