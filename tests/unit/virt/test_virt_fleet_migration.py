"""The fleet and live migration, without daemons: URIs, the fleet a notebook works with, the
destination's XML (a console log per host), the disk checks, and the %virsh forms."""
import xml.etree.ElementTree as ET

import pytest

from rbdnb import virt
from rbdnb.base.specs import parse_spec
from rbdnb.errors import InvalidArgument
from rbdnb.virt import fleet, migration
from rbdnb.virt.guest import parse_console

H1, H2 = "qemu:///system", "qemu:///system?socket=/s/h2/libvirt-sock"


def test_fleet_uris_are_checked_and_never_named_twice():
    assert fleet.check_uris(H1) == [H1]
    assert fleet.check_uris([H1, H2]) == [H1, H2]
    for bad in ([], [H1, H1], ["not a uri"], [H1, "qemu:///x<y"], 3):
        with pytest.raises(InvalidArgument):
            fleet.check_uris(bad)


def test_the_fleet_of_a_notebook(monkeypatch):
    monkeypatch.setenv("RBDNB_LIBVIRT_URIS", f"{H1} {H2}")
    assert fleet.default_uris() == [H1, H2]
    assert fleet.fleet_of(H2) == [H2, H1]           # its own host first
    assert fleet.fleet_of("qemu:///session") == ["qemu:///session"]  # not in the fleet
    assert fleet.fleet_of(H1, [H2]) == [H2]         # named hosts are the fleet
    assert fleet.other_host(H1) == (H1, H2)
    assert fleet.other_host(H1, "qemu+ssh://b/system") == (H1, "qemu+ssh://b/system")
    monkeypatch.setenv("RBDNB_LIBVIRT_URIS", H1)
    with pytest.raises(InvalidArgument, match="--hosts 2"):
        fleet.other_host(H1)


def test_a_bad_fleet_is_refused_before_any_host_is_touched():
    for kwargs in ({"ceph_pool": "a/b"}, {"ceph_pool": "p", "uuid": "nope"},
                   {"ceph_pool": "p", "libvirt_pool": "x y"}, {"ceph_pool": "p", "client": "a b"}):
        with pytest.raises(InvalidArgument):
            virt.apply_fleet(None, [H1, H2], **kwargs)


def test_the_migration_uri_follows_the_destination():
    assert migration.migration_uri(H2) == "tcp://127.0.0.1"
    assert migration.migration_uri("qemu+ssh://node7.example/system") == "tcp://node7.example"


def test_each_host_logs_the_console_to_its_own_file():
    u = "1a2b3c4d-0000-0000-0000-000000000000"
    assert migration.console_log_for("/g/vm.console.log", u) == "/g/vm.console.1a2b3c4d.log"
    # Back on a host, its own tag replaces the other's.
    assert migration.console_log_for("/g/vm.console.99887766.log", u) == \
        "/g/vm.console.1a2b3c4d.log"
    assert migration.console_log_for("/g/console", u) == "/g/console.1a2b3c4d"
    xml = virt.domain_xml("vm", [], console_log="/g/vm.console.log")
    moved = ET.fromstring(migration.dest_xml(xml, u))
    assert moved.find("./devices/serial/log").get("file") == "/g/vm.console.1a2b3c4d.log"
    assert moved.findtext("name") == "vm"


class FakeHost:
    """A destination with some secrets and rbd pools (what check_disks asks of it)."""

    def __init__(self, secrets=(), pools=()):
        self.secrets, self.pools = set(secrets), list(pools)

    def secretLookupByUUIDString(self, uuid):
        import libvirt
        if uuid not in self.secrets:
            err = libvirt.libvirtError("no secret")
            err.err = (libvirt.VIR_ERR_NO_SECRET,) + (None,) * 8
            raise err
        return object()

    def listAllStoragePools(self, flags):
        return [type("P", (), {"XMLDesc": lambda self, f, x=x: x})() for x in self.pools]


def _vm(secret="11111111-2222-3333-4444-555555555555", mons=(("127.0.0.1", 3300),)):
    auth = virt.RbdAuth(list(mons), "libvirt", secret)
    return virt.domain_xml("vm", [virt.rbd_disk(parse_spec("vms/disk"), "vda", auth)]), auth


def test_the_destination_must_open_every_disk_as_the_source_does():
    xml, auth = _vm()
    ok = FakeHost({auth.secret_uuid})
    assert [d["target"] for d in migration.check_disks("vm", xml, ok, H2)] == ["vda"]
    with pytest.raises(InvalidArgument, match="has no libvirt secret"):
        migration.check_disks("vm", xml, FakeHost(), H2)
    other = virt.rbd_pool_xml("lp", "vms", virt.RbdAuth([("10.0.0.9", 3300)], "libvirt",
                                                         auth.secret_uuid))
    with pytest.raises(InvalidArgument, match="other monitors"):
        migration.check_disks("vm", xml, FakeHost({auth.secret_uuid}, [other]), H2)
    same = virt.rbd_pool_xml("lp", "vms", auth)
    assert migration.check_disks("vm", xml, FakeHost({auth.secret_uuid}, [same]), H2)
    filexml = virt.domain_xml("vm", [virt.file_disk("/g/vm.qcow2")])
    with pytest.raises(InvalidArgument, match="not on RBD"):
        migration.check_disks("vm", filexml, ok, H2)


def test_bad_migrations_are_refused_before_connecting():
    for args, kwargs in [(("vm", H1, H1), {}), (("v m", H1, H2), {}),
                         (("vm", H1, "bad uri"), {}), (("vm", H1, H2), {"timeout": 0}),
                         (("vm", H1, H2), {"migrate_uri": "x y"})]:
        with pytest.raises(InvalidArgument):
            virt.migrate(*args, **kwargs)


def test_the_console_tells_uptime_and_boots():
    text = "RBDNB-GUEST-READY 6.1\nRBDNB-TICK 4.20\nRBDNB-DISK vda 8 " + "a" * 64 + \
        "\nRBDNB-TICK 6.31\n"
    seen = parse_console(text)
    assert seen["booted"] and seen["boots"] == 1 and seen["uptime"] == 6.31
    moved = parse_console("RBDNB-TICK 30.5\n")  # a migrated guest: reports, no boot here
    assert moved["booted"] and moved["boots"] == 0 and moved["uptime"] == 30.5
    assert parse_console("RBDNB-TICK\n")["uptime"] is None  # a guest built before uptimes
