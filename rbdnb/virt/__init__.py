"""libvirt with Ceph RBD: the ceph secret, rbd storage pools, and VMs with RBD disks.

The second half of the guide, in the core (no IPython here):

* :func:`ensure_secret` defines a libvirt secret of usage type ``ceph`` named
  ``client.NAME secret`` and sets its value through the API (never through a
  command line); the secret is private, so libvirt does not hand the key out again.
* :func:`ensure_rbd_pool` defines, starts and autostarts an ``rbd`` storage pool
  with the cluster's monitors and cephx auth.
* :func:`define_vm` builds domain XML with ElementTree: RBD network disks with
  auth and monitors, a serial console logged to a file, direct kernel boot or
  boot from disk, and a virt type that is KVM only where KVM really works.
* :func:`attach_rbd`, :func:`detach_rbd`, :func:`replace_disk` change disks of
  defined or running VMs.

Every value that ends up in XML is validated first: markup (quotes, ``<``,
``&``, ``/>``) is refused with a clear error before libvirt is called. libvirt
errors are mapped by error code, never by message text.

The modules: :mod:`~rbdnb.virt.connection` (connect, reachable, errors), :mod:`~rbdnb.virt.xml`
(pure builders and parsers), :mod:`~rbdnb.virt.secrets`, :mod:`~rbdnb.virt.pools` (storage
pools and volumes), :mod:`~rbdnb.virt.domains` (VMs and their disks), :mod:`~rbdnb.virt.discovery` (what
libvirt holds on one cluster),
:mod:`~rbdnb.virt.fleet` (the secret and pool on every host of a fleet),
:mod:`~rbdnb.virt.migration` (live migration), :mod:`~rbdnb.virt.guest` (the small test guest). Everything public is here as
``rbdnb.virt.NAME``.
"""

from __future__ import annotations

from ..errors import DomainExists, DomainNotFound, LibvirtError
from .connection import (CONNECT_TIMEOUT, SESSION_LIMITS, check_uri, close_quietly,
                         connect_libvirt, default_uri, find, reachable, translated)
from .xml import (DEFAULT_MEMORY_MIB, RbdAuth, check_domain_name, check_path, check_target,
                  check_uuid, check_xml_value, disks_of, domain_xml, file_disk, is_target,
                  kvm_usable, pick_monitor_hosts, pool_source, rbd_disk, rbd_pool_xml,
                  secret_usage, secret_xml, targets)
from .secrets import (PLACEHOLDER_UUID, define_secret, ensure_secret, find_secret,
                      list_secrets, set_secret_value, undefine_secret)
from .pools import (clone_volume, create_volume, delete_rbd_pool, delete_volume, find_pool,
                    ensure_rbd_pool, list_volumes, monitor_hosts, rbd_auth, rbd_pool_auth)
from .domains import (attach_rbd, auth_for, check_hotplug, define_file_vm,
                      define_vm, destroy_vm, detach_rbd, dump_xml, list_disks, replace_disk,
                      shutdown_vm, start_vm, undefine_vm, wait_guest)
from .discovery import CEPH_PORT, ClusterObjects, objects_on_cluster
from .fleet import (add_default_hosts_finder, apply_fleet, check_uris, default_uris,
                    fleet_of, other_host)
from .migration import host_uuid, migrate, round_trips
from . import guest

__all__ = [
    "CEPH_PORT", "CONNECT_TIMEOUT", "ClusterObjects", "DEFAULT_MEMORY_MIB", "DomainExists",
    "DomainNotFound", "LibvirtError", "PLACEHOLDER_UUID", "RbdAuth", "SESSION_LIMITS",
    "add_default_hosts_finder", "apply_fleet", "attach_rbd", "auth_for", "check_domain_name",
    "check_hotplug", "check_path", "check_target", "check_uri", "check_uris", "check_uuid",
    "check_xml_value", "clone_volume", "close_quietly", "connect_libvirt", "create_volume",
    "default_uri", "default_uris", "define_file_vm", "define_secret", "define_vm",
    "delete_rbd_pool", "delete_volume", "destroy_vm", "detach_rbd", "disks_of", "domain_xml",
    "dump_xml", "ensure_rbd_pool", "ensure_secret", "file_disk", "find", "find_pool",
    "find_secret", "fleet_of", "guest", "host_uuid", "is_target", "kvm_usable", "list_disks",
    "list_secrets", "list_volumes", "migrate", "monitor_hosts", "objects_on_cluster", "other_host",
    "pick_monitor_hosts", "pool_source", "rbd_auth", "rbd_disk", "rbd_pool_auth",
    "rbd_pool_xml", "reachable", "replace_disk", "round_trips", "secret_usage", "secret_xml",
    "set_secret_value", "shutdown_vm", "start_vm", "targets", "translated", "undefine_secret",
    "undefine_vm", "wait_guest",
]
