"""%virsh migrate and the fleet form of %virsh pool-define-rbd, without daemons."""
import pytest

from tests.unit.magics.conftest import run

H2 = "qemu:///system?socket=/s/h2/libvirt-sock"


def test_virsh_migrate_needs_live_or_offline_and_defers_other_forms(shell):
    with pytest.raises(Exception, match="--live"):
        run(shell, f"%virsh migrate vm {H2}")
    from rbdnb.magics import virsh
    assert virsh._defer(("migrate",), ["migrate", "--live", "--p2p", "vm", H2])
    assert not virsh._defer(("migrate",), ["migrate", "--live", "vm", H2, "--migrateuri=tcp://x"])
