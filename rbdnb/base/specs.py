"""Names and specs: ``pool[/namespace]/image[@snap]``, client names, object sizes.

Everything is validated here, before anything reaches the cluster. Names are
held to a conservative character set (letters, digits, ``.``, ``_``, ``-``) that
is safe in every place rbdnb passes them on: ``rbd`` and ``ceph`` arguments,
``qemu-img``'s ``rbd:`` filenames, and libvirt XML.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..errors import InvalidArgument

DEFAULT_POOL = "rbd"
NAME_MAX = 128
_NAME_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]*")
_ALLOWED = "letters, digits, '.', '_' and '-', not starting with '.' or '-'"


def check_name(name: object, kind: str) -> str:
    """Return ``name`` if it is a valid pool, namespace, image, snapshot or user name."""
    if not isinstance(name, str) or not name:
        raise InvalidArgument(f"{kind} name {name!r} is not valid: it must be a non-empty "
                              f"string of {_ALLOWED}")
    if len(name) > NAME_MAX:
        raise InvalidArgument(f"{kind} name {name[:20]!r}... is too long: at most "
                              f"{NAME_MAX} characters")
    if not _NAME_RE.fullmatch(name):  # fullmatch: '$' would pass 'name\n'
        raise InvalidArgument(f"{kind} name {name!r} is not valid: use {_ALLOWED}")
    return name


@dataclass(frozen=True)
class ImageSpec:
    """An image (or one of its snapshots): ``pool[/namespace]/image[@snap]``."""

    pool: str
    image: str
    namespace: str = ""
    snap: str | None = None

    def __post_init__(self):
        check_name(self.pool, "pool")
        check_name(self.image, "image")
        if self.namespace:
            check_name(self.namespace, "namespace")
        if self.snap is not None:
            check_name(self.snap, "snapshot")

    @property
    def image_path(self) -> str:
        """``pool[/namespace]/image``, without the snapshot."""
        ns = f"{self.namespace}/" if self.namespace else ""
        return f"{self.pool}/{ns}{self.image}"

    def __str__(self) -> str:
        return self.image_path + (f"@{self.snap}" if self.snap is not None else "")

    def at(self, snap: str | None) -> "ImageSpec":
        return ImageSpec(self.pool, self.image, self.namespace, snap)

    def with_image(self, image: str) -> "ImageSpec":
        return ImageSpec(self.pool, image, self.namespace, None)


def parse_spec(spec: "str | ImageSpec", *, snap: str = "forbidden",
               default_pool: str = DEFAULT_POOL) -> ImageSpec:
    """Parse ``pool[/namespace]/image[@snap]``; a bare ``image`` is in ``default_pool``.

    ``snap`` says whether a snapshot part is ``"required"``, ``"optional"`` or
    ``"forbidden"``; a spec that does not fit raises :class:`InvalidArgument`.
    """
    if isinstance(spec, ImageSpec):
        parsed = spec
    else:
        if not isinstance(spec, str) or not spec.strip() or spec != spec.strip():
            raise InvalidArgument(f"image spec {spec!r} is not valid: expected "
                                  f"pool[/namespace]/image[@snap]")
        text = spec
        if text.count("@") > 1:
            raise InvalidArgument(f"image spec {spec!r} is not valid: at most one '@'")
        path, _, snapname = text.partition("@")
        if "@" in text and not snapname:
            raise InvalidArgument(f"image spec {spec!r} is not valid: empty snapshot name "
                                  f"after '@'")
        parts = path.split("/")
        if len(parts) == 1:
            pool, namespace, image = default_pool, "", parts[0]
        elif len(parts) == 2:
            pool, namespace, image = parts[0], "", parts[1]
        elif len(parts) == 3:
            pool, namespace, image = parts
            if not namespace:
                raise InvalidArgument(f"image spec {spec!r} is not valid: empty namespace")
        else:
            raise InvalidArgument(f"image spec {spec!r} is not valid: expected "
                                  f"pool[/namespace]/image[@snap]")
        try:
            parsed = ImageSpec(pool, image, namespace, snapname or None)
        except InvalidArgument as exc:
            raise InvalidArgument(f"image spec {spec!r}: {exc}") from None
    if snap == "required" and parsed.snap is None:
        raise InvalidArgument(f"image spec {str(spec)!r} names no snapshot: expected "
                              f"pool/image@snap")
    if snap == "forbidden" and parsed.snap is not None:
        raise InvalidArgument(f"image spec {str(spec)!r} names a snapshot; expected "
                              f"pool/image without '@snap'")
    return parsed


def parse_client(name: str) -> str:
    """``libvirt`` or ``client.libvirt`` -> ``libvirt`` (the id, without ``client.``)."""
    if not isinstance(name, str):
        raise InvalidArgument(f"client name {name!r} is not valid: expected e.g. libvirt "
                              f"or client.libvirt")
    ident = name[len("client."):] if name.startswith("client.") else name
    return check_name(ident, "client")


def object_size_order(size: int) -> int:
    """The RBD ``order`` (log2 of the object size) for an object size in bytes."""
    if size < 4096 or size > 32 * 1024**2 or size & (size - 1):
        raise InvalidArgument(f"object size {size} is not valid: a power of two from 4K "
                              f"to 32M")
    return size.bit_length() - 1
