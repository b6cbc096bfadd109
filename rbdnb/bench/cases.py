"""One benchmark case (engine, I/O type and size, queue depth, amount), checked before any I/O,
and the combinations a matrix runs."""

from __future__ import annotations

from dataclasses import dataclass

from ..base.units import check_int, check_seconds, format_size, parse_size
from ..errors import InvalidArgument

ENGINES = ("native", "rbd", "fio")  # the registry in engines.py has one of each
IO_TYPES = ("read", "write", "randread", "randwrite", "mixed")
DEFAULT_TOTAL = "256M"
MAX_QUEUE_DEPTH = 256
MAX_SECONDS = 3600


def check_choice(value, allowed, what: str) -> str:
    """``value`` if it is one of ``allowed``, else InvalidArgument naming them."""
    if value not in allowed:
        raise InvalidArgument(f"{what} {value!r} is not valid: expected one of "
                              f"{', '.join(allowed)}")
    return value


@dataclass(frozen=True)
class Case:
    """One run's parameters, in bytes and seconds: ``total`` bytes of I/O or ``seconds``."""

    engine: str
    io_type: str
    io_size: int
    queue_depth: int
    total: int | None
    seconds: float | None
    rw_mix_read: int

    @property
    def reads(self) -> float:
        """The fraction of I/Os that read."""
        if self.io_type in ("read", "randread"):
            return 1.0
        return self.rw_mix_read / 100 if self.io_type == "mixed" else 0.0

    @property
    def expected_seconds(self) -> float:
        """For progress only: a guess from a modest 50 MiB/s or 2000 IOPS, the slower."""
        if self.seconds is not None:
            return self.seconds
        ops = self.total / self.io_size
        return max(1.0, min(600.0, max(self.total / (50 << 20), ops / 2000)))


def make_case(engine, io_type, io_size, queue_depth, total, seconds, rw_mix_read) -> Case:
    """A checked :class:`Case`; InvalidArgument naming the first value that is not valid."""
    check_choice(engine, ENGINES, "engine")
    check_choice(io_type, IO_TYPES, "io type")
    size = parse_size(io_size, what="io size", minimum=512, maximum=64 << 20)
    if size % 512:
        raise InvalidArgument(f"io size {io_size!r} is not a multiple of 512 bytes")
    check_int(queue_depth, "queue depth", 1, MAX_QUEUE_DEPTH)
    check_int(rw_mix_read, "read percentage", 0, 100)
    if total is not None and seconds is not None:
        raise InvalidArgument("give total= or seconds=, not both")
    if seconds is not None:
        check_seconds(seconds, "seconds", MAX_SECONDS)
        nbytes = None
    else:
        nbytes = parse_size(DEFAULT_TOTAL if total is None else total, what="total",
                            minimum=size)
        if nbytes % size:
            raise InvalidArgument(f"total {format_size(nbytes)} is not a whole number of "
                                  f"{format_size(size)} I/Os")
    return Case(engine, io_type, size, queue_depth, nbytes,
                float(seconds) if seconds is not None else None, rw_mix_read)


def all_cases(engines, io_types, io_sizes, queue_depths, total, seconds,
              rw_mix_read) -> list[Case]:
    """Every combination, checked, engines innermost."""
    lists = {"engines": engines, "io_types": io_types, "io_sizes": io_sizes,
             "queue_depths": queue_depths}
    for name, values in lists.items():
        if isinstance(values, (str, int)) or not list(values):
            raise InvalidArgument(f"{name} {values!r} is not valid: expected a non-empty list")
    return [make_case(e, t, s, q, total, seconds, rw_mix_read)
            for t in io_types for s in io_sizes for q in queue_depths for e in engines]
