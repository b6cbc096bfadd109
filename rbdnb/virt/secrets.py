"""The ceph secret in libvirt: defined with usage ``client.NAME secret`` and its value set
through the API (never a command line); private, so libvirt does not hand the key out again.
Whether a value is unchanged is known from key fingerprints kept beside the keyrings."""

from __future__ import annotations

import base64
import os
import threading

from ..base import paths
from ..base.plan import Plan, Result
from ..base.specs import parse_client
from ..ceph.cluster import Cluster
from ..errors import (Conflict)
from .xml import check_uuid, secret_usage, secret_xml
from .connection import find, translated


def define_secret(conn, cluster: Cluster, client: str = "libvirt", uuid: str | None = None, *,
                  dry_run: bool = False) -> Result | Plan:
    """Define (or reuse, by usage name) the ceph secret of ``client.NAME`` and set its value.

    A given ``uuid`` is honoured; an existing secret with another UUID is a
    :class:`Conflict`. The key goes from the cluster to libvirt through the API.
    """
    import libvirt
    from ..ceph.users import get_key
    usage = secret_usage(client)
    if uuid is not None:
        check_uuid(uuid)
    plan = Plan(f"libvirt secret for client.{parse_client(client)}")
    plan.add("virsh", "secret-define", "secret.xml")
    plan.note(f"secret.xml: `{secret_xml(client, uuid)}`")
    plan.note("the value is set through libvirt's API from `ceph auth get`, never with "
              "`virsh secret-set-value KEY`; the secret is private, so libvirt does not "
              "reveal it again")
    if dry_run:
        return plan
    key = get_key(cluster, client)
    with translated(f"secret {usage!r}"):
        existing = find(conn.secretLookupByUsage, libvirt.VIR_SECRET_USAGE_TYPE_CEPH, usage,
                         missing=libvirt.VIR_ERR_NO_SECRET)
    if existing is not None:
        if uuid and existing.UUIDString() != uuid:
            raise Conflict(f"secret {usage!r} exists with UUID {existing.UUIDString()}, "
                           f"not {uuid}")
        # A private secret cannot be read back: "unchanged" only when the value rbdnb set
        # last is this cluster's key (a fingerprint, kept 0600 beside the keyrings).
        if _value_fingerprints().get(_where(conn, existing.UUIDString())) == _fingerprint(key):
            return Result(plan.action, False, f"unchanged: secret {existing.UUIDString()} "
                          f"holds this cluster's key of client.{parse_client(client)}", plan,
                          value=existing.UUIDString())
        with translated(f"secret {usage!r}"):
            existing.setValue(base64.b64decode(key.reveal()))
        _remember_value(_where(conn, existing.UUIDString()), key)
        return Result(plan.action, True, f"secret {existing.UUIDString()} exists: its value was "
                      f"set from the cluster (it held another key, or one rbdnb had not set)",
                      plan, value=existing.UUIDString())
    with translated(f"secret {usage!r}"):
        secret = conn.secretDefineXML(secret_xml(client, uuid))
        secret.setValue(base64.b64decode(key.reveal()))
    _remember_value(_where(conn, secret.UUIDString()), key)
    return Result(plan.action, True, f"defined secret {secret.UUIDString()} and set its value",
                  plan, value=secret.UUIDString())


def _fingerprint(key) -> str:
    import hashlib
    return hashlib.sha256(b"rbdnb libvirt secret\0" + key.reveal().encode()).hexdigest()[:32]


def _where(conn, uuid: str) -> str:
    """The record's key for a secret: its UUID on one libvirt host (a fleet has the same
    UUID on every host, each with its own value)."""
    try:
        uri = conn.getURI()
    except Exception:
        uri = "?"
    return f"{uuid} {uri}"


def _fingerprints_path():
    return paths.keyring_dir() / "libvirt-secrets.json"


def _value_fingerprints() -> dict:
    import json
    try:
        return json.loads(_fingerprints_path().read_text())
    except (OSError, ValueError):
        return {}


_RECORD_LOCK = threading.Lock()  # a fleet sets values on many hosts at once


def _remember_value(uuid: str, key) -> None:
    import fcntl
    import json
    import tempfile
    try:
        paths.ensure_keyring_dir()
        path = _fingerprints_path()
        with _RECORD_LOCK, open(f"{path}.lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # and other processes
            known = _value_fingerprints()
            known[uuid] = _fingerprint(key)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".libvirt-secrets-")
            with os.fdopen(fd, "w") as fh:
                fh.write(json.dumps(known, indent=1))
            os.replace(tmp, path)
    except OSError:
        pass  # without the record, the next run sets the value again and says so


PLACEHOLDER_UUID = "00000000-0000-0000-0000-000000000000"


def find_secret(conn, client: str = "libvirt") -> str | None:
    """The UUID of ``client.NAME``'s ceph secret in libvirt, or None (changes nothing)."""
    import libvirt
    usage = secret_usage(client)
    with translated(f"secret {usage!r}"):
        found = find(conn.secretLookupByUsage, libvirt.VIR_SECRET_USAGE_TYPE_CEPH, usage,
                      missing=libvirt.VIR_ERR_NO_SECRET)
    return found.UUIDString() if found is not None else None


def ensure_secret(conn, cluster: Cluster, client: str = "libvirt",
                  uuid: str | None = None, *, dry_run: bool = False) -> str:
    """The UUID of ``client.NAME``'s ceph secret in libvirt, defined and set if needed.
    With ``dry_run``, the UUID it has (or would get: ``uuid``, else a placeholder), and
    nothing is defined."""
    if dry_run:
        return find_secret(conn, client) or uuid or PLACEHOLDER_UUID
    return define_secret(conn, cluster, client, uuid).value


def list_secrets(conn):
    """libvirt's secrets as a DataFrame (UUID, usage), as ``virsh secret-list``; never their
    values."""
    import pandas as pd
    rows = []
    with translated("secrets"):
        for s in conn.listAllSecrets():
            kind = _USAGE_TYPES.get(s.usageType(), str(s.usageType()))
            # usage as virsh secret-list shows it: "ceph client.libvirt secret"
            rows.append({"uuid": s.UUIDString(), "usage": f"{kind} {s.usageID()}".strip()})
    return pd.DataFrame(rows, columns=["uuid", "usage"])


# libvirt's usage types (virSecretUsageType), named as virsh names them.
_USAGE_TYPES = {0: "", 1: "volume", 2: "ceph", 3: "iscsi", 4: "tls", 5: "vtpm"}


def undefine_secret(conn, uuid: str, *, dry_run: bool = False) -> Result | Plan:
    """``virsh secret-undefine UUID``."""
    check_uuid(uuid)
    plan = Plan(f"undefine secret {uuid}").add("virsh", "secret-undefine", uuid)
    if dry_run:
        return plan
    secret = _by_uuid(conn, uuid)
    if secret is None:
        return Result(plan.action, False, "unchanged: no such secret", plan)
    with translated(f"secret {uuid}"):
        secret.undefine()
    return Result(plan.action, True, "undefined", plan)


def set_secret_value(conn, cluster: Cluster, uuid: str, client: str = "libvirt", *,
                     dry_run: bool = False) -> Result | Plan:
    """Set secret ``uuid``'s value to ``client.NAME``'s key, read from the cluster and given to
    libvirt through its API: what the guide does with ``virsh secret-set-value --secret UUID
    --base64 KEY``, without the key on a command line. Raises NotFound (no such secret)."""
    from ..ceph.users import get_key
    from ..errors import NotFound
    check_uuid(uuid)
    name = parse_client(client)
    plan = Plan(f"set the value of secret {uuid} to client.{name}'s key")
    plan.add("virsh", "secret-set-value", "--secret", uuid, "--base64", "(client." + name +
             "'s key, through libvirt's API)")
    plan.note("the key goes from `ceph auth get` to libvirt's API; it is never typed or shown")
    if dry_run:
        return plan
    secret = _by_uuid(conn, uuid)
    if secret is None:
        raise NotFound(f"libvirt secret {uuid} not found: define it first (virsh secret-define)")
    key = get_key(cluster, name)
    # Set whatever rbdnb remembers: a private value cannot be read back to compare, and this
    # is asked for by name, so it is done.
    with translated(f"secret {uuid}"):
        secret.setValue(base64.b64decode(key.reveal()))
    _remember_value(_where(conn, uuid), key)
    return Result(plan.action, True, f"set secret {uuid} to client.{name}'s key", plan,
                  value=uuid)


def _by_uuid(conn, uuid: str):
    """The libvirt secret of that UUID, or None."""
    import libvirt
    with translated(f"secret {uuid}"):
        return find(conn.secretLookupByUUIDString, uuid, missing=libvirt.VIR_ERR_NO_SECRET)
