"""``%rbdnb``: what this kernel is connected to, and connecting it elsewhere."""

from __future__ import annotations

from .table import Table

RBDNB = Table("rbdnb")


def _connect(m, a):
    m.connect(a.conf, a.id, a.keyring, a.uri)
    return m.status()


p = RBDNB.add("connect", "connect to a cluster (default: the running sandbox) and libvirt",
              _connect, example="connect --conf {conf} --uri {uri}")
p.add_argument("--conf")
p.add_argument("--id", default="admin")
p.add_argument("--keyring")
p.add_argument("--uri")
RBDNB.add("status", "what this kernel is connected to", lambda m, a: m.status(),
          example="status")
