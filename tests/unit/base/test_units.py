import pytest
from hypothesis import given, strategies as st

from rbdnb.errors import InvalidArgument
from rbdnb.base.units import MAX_SIZE, format_size, parse_size


@pytest.mark.parametrize("text, expected", [
    ("10G", 10 * 1024**3), ("512M", 512 * 1024**2), ("1T", 1024**4), ("4K", 4096),
    ("4k", 4096), ("4KiB", 4096), ("4KB", 4096), ("1.5G", 3 * 1024**3 // 2),
    (" 8G ", 8 * 1024**3), ("4096B", 4096), (1024, 1024),
])
def test_parse_size_accepts_what_rbd_and_qemu_img_accept(text, expected):
    assert parse_size(text) == expected


def test_bare_number_needs_a_unit_unless_a_default_is_given():
    assert parse_size("10", default_unit="M") == 10 * 1024**2
    assert parse_size("10", default_unit="B") == 10
    with pytest.raises(InvalidArgument, match="'1024' has no unit: write e.g. 1024M"):
        parse_size("1024")


@pytest.mark.parametrize("text", ["0", "-1G", "10Q", "1.5.G", "G", "", "1 0G", "iB", "1.0000001K",
                                  "99999999999999999999999E", True, None, 1.5])
def test_parse_size_rejects_with_a_message_naming_the_value(text):
    with pytest.raises(InvalidArgument) as err:
        parse_size(text, what="image size")
    assert "image size" in str(err.value)
    assert repr(text) in str(err.value)
    assert "\n" not in str(err.value)


def test_parse_size_bounds():
    with pytest.raises(InvalidArgument, match="too small"):
        parse_size("1M", minimum=256 * 1024**2)
    with pytest.raises(InvalidArgument, match="too large"):
        parse_size("2E", maximum=2**60)
    assert parse_size(f"{MAX_SIZE}B") == MAX_SIZE
    with pytest.raises(InvalidArgument, match="too large"):
        parse_size(f"{MAX_SIZE + 1}B")


@given(st.integers(min_value=1, max_value=2**60))
def test_format_then_parse_round_trips_exact_sizes(n):
    text = format_size(n)
    if "." not in text:
        assert parse_size(text) == n


@given(st.integers(min_value=0, max_value=6), st.integers(min_value=1, max_value=10**6))
def test_every_unit_scales_by_1024(power, count):
    unit = "BKMGTPE"[power]
    value = count * 1024**power
    if value <= MAX_SIZE:
        assert parse_size(f"{count}{unit}") == value


@given(st.text(alphabet="0123456789.KMGTPEiBQ- ", max_size=8))
def test_parse_size_never_fails_with_anything_but_invalid_argument(text):
    try:
        assert parse_size(text) >= 1
    except InvalidArgument:
        pass
