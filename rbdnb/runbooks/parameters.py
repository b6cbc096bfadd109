"""A runbook's parameters, declared once: in its ``parameters`` cell, each with a kind.

::

    pool: "pool" = "libvirt-pool"     # the Ceph pool (the guide's libvirt-pool)
    pg_num: "int[1,32768]" = 32       # the guide uses 128 on a real cluster
    boot_count: "int[0,vm_count]" = 2 # a bound may name another parameter

The annotation is the kind; the comment is the help. That one line is read by the runbook
itself (:func:`check_namespace`, from its first cell), by ``rbdnb run`` and JupyterLab's
form and server before any kernel starts (:func:`declared`, through papermill's own
inspection of the cell: a pattern per line, never running or parsing the cell as Python),
and by ``papermill --help-notebook``, which lists the kinds as types.

A ``file``, ``dir`` or ``uri`` may be None: the help says what None means (the sandbox's
conf, rbdnb's data dir, the default URI). Kinds:

========================  ==========================================================
``bool`` ``str``          True/False; any text
``int[LOW,HIGH]``         a whole number in the range (a bound may be a parameter)
``count``                 ``int[1,10000]``
``pool`` ``client``       a pool name; a cephx client name (``libvirt``, ``client.x``)
``image`` ``snapshot``    an image name or ``pool/image``; a snapshot name
``name``                  a part of a name (letters, digits, ``.``, ``_``, ``-``; may be empty)
``domain`` ``uri``        a libvirt domain name; a libvirt URI
``size``                  a size as rbd takes it (``10G``, ``512M``)
``file`` ``dir``          a file that exists; a directory (made if missing)
``engine`` ``io_type``    a benchmark engine; a benchmark I/O type
``list[KIND]``            a JSON list of values of that kind
========================  ==========================================================
"""

from __future__ import annotations

import ast
import os
import re
from dataclasses import dataclass
from pathlib import Path

from ..errors import InvalidArgument, ParameterError

_NAME_PART = re.compile(r"[A-Za-z0-9_.\-]{1,64}")
_RANGE = re.compile(r"int\[\s*(-?\w+)\s*,\s*(-?\w+)\s*\]")
_LIST = re.compile(r"list\[(.+)\]")
_ALIASES = {"count": "int[1,10000]"}


@dataclass(frozen=True)
class Parameter:
    """One declared parameter: its name, kind, default (source text and value), help."""
    name: str
    kind: str
    default: str
    value: object
    help: str

    @property
    def type(self) -> str:
        """The JSON-ish type a front end edits it as: bool, int, str, list, or None
        (nullable: empty means None)."""
        if self.value is None:
            return "None"
        kind = _ALIASES.get(self.kind, self.kind)
        return "bool" if kind == "bool" else "int" if _RANGE.fullmatch(kind) else \
            "list" if _LIST.fullmatch(kind) else "str"

    def as_dict(self) -> dict:
        return {"name": self.name, "kind": self.kind, "default": self.default,
                "value": self.value, "type": self.type, "help": self.help}


def _literal(text: str):
    """A default as a value: the literal the cell writes (``None``, ``"x"``, ``[1, 2]``)."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def declared(path: str | os.PathLike) -> dict[str, Parameter]:
    """The parameters a runbook's ``parameters`` cell declares, in order (papermill reads
    the cell line by line; a parameter without a kind is an error of the runbook)."""
    import papermill
    out = {}
    for name, p in papermill.inspect_notebook(str(path)).items():
        kind = p["inferred_type_name"]
        if kind in ("None", ""):
            raise InvalidArgument(f"{Path(path).name}: parameter {name} has no kind "
                                  f'(write it as {name}: "KIND" = ...)')
        out[name] = Parameter(name, kind, p["default"], _literal(p["default"]), p["help"])
    return out


def check(parameters: dict[str, Parameter], values: dict) -> None:
    """Check every value against its kind; the first bad one raises ParameterError naming it.

    ``values`` holds every parameter (defaults and what was given)."""
    values = {**{p.name: p.value for p in parameters.values()}, **values}
    for p in parameters.values():
        _check(p.name, p.kind, values[p.name], values)


def check_namespace(namespace: dict) -> dict:
    """From a runbook's first cell: check the parameters its ``parameters`` cell declared
    (the kinds it left in the kernel's ``__annotations__``) with their values now,
    papermill's injected ones included. Returns name -> value."""
    kinds = {name: kind for name, kind in (namespace.get("__annotations__") or {}).items()
             if isinstance(kind, str)}
    values = {name: namespace.get(name) for name in kinds}
    for name, kind in kinds.items():
        _check(name, kind, values[name], values)
    return values


def _check(name: str, kind: str, value, values: dict) -> None:
    def bad(what: str):
        raise ParameterError(f"parameter {name}: {value!r} is not {what}")

    kind = _ALIASES.get(kind, kind)
    listed = _LIST.fullmatch(kind)
    if listed:
        if not isinstance(value, (list, tuple)):
            bad(f"a list of {listed.group(1)}")
        for item in value:
            _check(name, listed.group(1), item, values)
        return
    bounds = _RANGE.fullmatch(kind)
    if bounds:
        low, high = (_bound(name, b, values) for b in bounds.groups())
        from ..base.units import check_int  # the one range check
        check_int(value, f"parameter {name}:", low, high, error=ParameterError)
        return
    if value is None and kind in NULLABLE:
        return
    if kind == "bool":
        if not isinstance(value, bool):
            bad("True or False")
        return
    if not isinstance(value, str):
        bad(f"a {kind} (text)")
    try:
        CHECKS[kind](name, value)
    except KeyError:
        raise InvalidArgument(f"parameter {name}: the kind {kind!r} is not one rbdnb "
                              f"knows") from None
    except ParameterError:
        raise
    except InvalidArgument as exc:
        text = exc.template
        raise ParameterError(text if text.startswith(f"parameter {name}") else
                             f"parameter {name}: {text}") from None


def _bound(name: str, text: str, values: dict) -> int:
    if text.lstrip("-").isdigit():
        return int(text)
    bound = values.get(text)
    if isinstance(bound, bool) or not isinstance(bound, int):
        raise ParameterError(f"parameter {name}: its bound {text} is not a whole number")
    return bound


def _text(name: str, value: str) -> str:
    if not value or any(ch in value for ch in "\0\n\r"):
        raise ParameterError(f"parameter {name}: {value!r} is not a valid path")
    return value


def _file(name: str, value: str) -> None:
    if not os.path.isfile(_text(name, value)):
        raise ParameterError(f"parameter {name}: {value} does not exist")


def _dir(name: str, value: str) -> None:
    if os.path.exists(_text(name, value)) and not os.path.isdir(value):
        raise ParameterError(f"parameter {name}: {value} is not a directory")


def _name_part(name: str, value: str) -> None:
    if value and not _NAME_PART.fullmatch(value):
        raise ParameterError(f"parameter {name}: {value!r} is not valid in a name: use "
                             f"letters, digits, '.', '_' and '-'")


def _pool(name: str, value: str) -> None:
    from ..base.specs import check_name
    check_name(value, f"parameter {name}: pool")


def _image(name: str, value: str) -> None:
    from ..base.specs import parse_spec
    parse_spec(value if "/" in value else f"rbd/{value}")


def _snapshot(name: str, value: str) -> None:
    from ..base.specs import parse_spec
    parse_spec(f"rbd/image@{value}", snap="required")


def _client(name: str, value: str) -> None:
    from ..base.specs import parse_client
    parse_client(value)


def _size(name: str, value: str) -> None:
    from ..base.units import parse_size
    parse_size(value, what=f"parameter {name}")


def _domain(name: str, value: str) -> None:
    from ..virt import check_domain_name
    check_domain_name(value)


def _uri(name: str, value: str) -> None:
    from ..virt import check_uri
    check_uri(value)


def _engine(name: str, value: str) -> None:
    from ..bench.cases import ENGINES, check_choice
    check_choice(value, ENGINES, "engine")


def _io_type(name: str, value: str) -> None:
    from ..bench.cases import IO_TYPES, check_choice
    check_choice(value, IO_TYPES, "I/O type")


NULLABLE = {"file", "dir", "uri"}
CHECKS = {"str": lambda name, value: None, "file": _file, "dir": _dir, "name": _name_part,
          "pool": _pool, "image": _image, "snapshot": _snapshot, "client": _client,
          "size": _size, "domain": _domain, "uri": _uri, "engine": _engine,
          "io_type": _io_type}
