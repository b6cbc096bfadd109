"""rbd's on-disk metadata decoded (rbdnb.ceph.headers), on bytes read from a real Ceph 16.2
cluster (the sandbox): a golden image with a protected and an unprotected snapshot, a clone v1
of it with a snapshot of its own, and a clone v2's entry in its parent's header. The
integration test checks the listing built on them against `rbd ls -l --format json`."""
import pytest

from rbdnb.ceph import headers

GOLDEN = {
    "features": "3d 00 00 00 00 00 00 00",
    "order": "16",
    "size": "00 00 00 04 00 00 00 00",
    "snapshot_0000000000000004": "08 08 38 00 00 00 04 00 00 00 00 00 00 00 04 00 00 00 62 61 "
    "73 65 00 00 00 04 00 00 00 00 02 00 00 00 00 00 00 00 00 01 01 04 00 00 00 00 00 00 00 79 "
    "0c 11 6b de a1 89 03 00 00 00 00 00",
    "snapshot_0000000000000005": "08 08 37 00 00 00 05 00 00 00 00 00 00 00 03 00 00 00 74 77 "
    "6f 00 00 00 04 00 00 00 00 00 00 00 00 00 00 00 00 00 01 01 04 00 00 00 00 00 00 00 79 0c "
    "11 6b 00 b0 f1 09 00 00 00 00 00",
}
KID = {
    "features": "3d 00 00 00 00 00 00 00",
    "order": "16",
    "size": "00 00 00 04 00 00 00 00",
    "parent": "02 02 2d 00 00 00 01 00 00 00 00 00 00 00 00 00 00 00 0c 00 00 00 31 30 31 34 66 "
    "31 63 38 30 64 31 62 04 00 00 00 00 00 00 00 01 00 00 00 04 00 00 00 00",
    "snapshot_0000000000000006": "08 08 3e 00 00 00 06 00 00 00 00 00 00 00 02 00 00 00 6b 31 "
    "00 00 00 04 00 00 00 00 00 00 00 00 00 00 00 00 00 01 01 04 00 00 00 00 00 00 00 79 0c 11 "
    "6b 17 16 03 1b 00 00 00 00 01 00 00 00 04 00 00 00 00",
}
V2_CHILDREN = "01 00 00 00 02 01 1b 00 00 00 01 00 00 00 00 00 00 00 0b 00 00 00 31 30 35 33 65 " \
    "32 63 38 63 66 63 00 00 00 00"


def _omap(d):
    return {k: bytes.fromhex(v) for k, v in d.items()}


def test_a_golden_image_and_its_snapshots():
    h = headers.decode_header(_omap(GOLDEN))
    assert (h.size, h.order, h.features, h.parent) == (64 << 20, 22, 0x3d, None)
    assert [(s.id, s.name, s.protected, s.user) for s in h.snaps] == [
        (4, "base", True, True), (5, "two", False, True)]


def test_a_clone_names_its_parent_by_pool_id_image_id_and_snap_id():
    h = headers.decode_header(_omap(KID))
    assert h.parent == (1, "", "1014f1c80d1b", 4)
    assert [(s.name, s.protected) for s in h.user_snaps] == [("k1", False)]


def test_clone_v2_children_and_v1_child_ids():
    assert headers.decode_child_specs(bytes.fromhex(V2_CHILDREN)) == [(1, "", "1053e2c8cfc")]
    ids = b"\x02\x00\x00\x00" + b"\x03\x00\x00\x00abc" + b"\x02\x00\x00\x00de"
    assert headers.decode_child_ids(ids) == ["abc", "de"]


@pytest.mark.parametrize("damage", [
    lambda o: o.pop("size"),                                        # not a format 2 header
    lambda o: o.update(parent=b"\x01" + o["parent"][1:]),           # an older struct version
    lambda o: o.update(snapshot_0000000000000006=o["snapshot_0000000000000006"][:-3]),  # short
    lambda o: o.update(parent=o["parent"][:2] + b"\x2e" + o["parent"][3:] + b"\x00"),  # trailing
])
def test_what_it_does_not_read_is_undecodable_never_a_guess(damage):
    omap = _omap(KID)
    damage(omap)
    with pytest.raises(headers.Undecodable):
        headers.decode_header(omap)
