import pytest
from hypothesis import given, strategies as st

from rbdnb.errors import InvalidArgument
from rbdnb.base.specs import ImageSpec, object_size_order, parse_client, parse_spec

NAME = st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_.\-]{0,30}", fullmatch=True)


@pytest.mark.parametrize("text, expected", [
    ("img", ImageSpec("rbd", "img")),
    ("pool/img", ImageSpec("pool", "img")),
    ("pool/ns/img", ImageSpec("pool", "img", "ns")),
    ("pool/img@snap", ImageSpec("pool", "img", snap="snap")),
    ("libvirt-pool/os-data", ImageSpec("libvirt-pool", "os-data")),
])
def test_parse_spec(text, expected):
    assert parse_spec(text, snap="optional") == expected


@pytest.mark.parametrize("text", ["", " ", "a/b/c/d", "p/", "/img", "p//img", "p/img@",
                                  "p/img@a@b", "p/ba d", "p/<x/>", "p/a&b", "p/'q'", "p/..",
                                  ".hidden", "-dash", "p/img:opt", "p/é", "p/a\"b", None, 5,
                                  " rdb_1/image3 ", "p/img\n", "p/img@s\n", "p\n/img"])
def test_parse_spec_rejects(text):
    with pytest.raises(InvalidArgument) as err:
        parse_spec(text, snap="optional")
    assert "\n" not in str(err.value)


def test_snap_rules():
    with pytest.raises(InvalidArgument, match="names no snapshot"):
        parse_spec("p/img", snap="required")
    with pytest.raises(InvalidArgument, match="names a snapshot"):
        parse_spec("p/img@s")
    assert parse_spec("p/img@s", snap="required").snap == "s"


@given(NAME, NAME, st.one_of(st.just(""), NAME), st.one_of(st.none(), NAME))
def test_spec_round_trips(pool, image, namespace, snap):
    spec = ImageSpec(pool, image, namespace, snap)
    assert parse_spec(str(spec), snap="optional") == spec


@given(st.text(max_size=40))
def test_parse_spec_fails_only_with_invalid_argument(text):
    try:
        spec = parse_spec(text, snap="optional")
    except InvalidArgument:
        return
    for part in (spec.pool, spec.image, spec.namespace, spec.snap or ""):
        assert not any(ch in part for ch in "/@<>&'\" :\\")


def test_client_names():
    assert parse_client("libvirt") == "libvirt"
    assert parse_client("client.libvirt") == "libvirt"
    for bad in ("client.", "", "lib virt", "a;b", None):
        with pytest.raises(InvalidArgument):
            parse_client(bad)


def test_object_size_order():
    assert object_size_order(4 * 1024**2) == 22
    for bad in (3 * 1024**2, 1024, 64 * 1024**2):
        with pytest.raises(InvalidArgument, match="power of two"):
            object_size_order(bad)
