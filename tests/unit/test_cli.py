import pytest

from rbdnb import cli


def test_bad_size_is_one_line_and_exit_1(capsys, tmp_path):
    assert cli.main(["sandbox", "up", "--dir", str(tmp_path / "b"), "--osd-size", "10Q"]) == 1
    err = capsys.readouterr().err
    assert err.strip() == "rbdnb: OSD size '10Q' is not valid: expected a size such as 10G, 512M or 1.5T"
    assert not (tmp_path / "b").exists()


def test_status_of_nothing_exits_3(capsys, tmp_path):
    assert cli.main(["sandbox", "status", "--dir", str(tmp_path)]) == 3
    assert "not running" in capsys.readouterr().out


def test_env_prints_export_lines(capsys, tmp_path):
    box = tmp_path / "my box"
    assert cli.main(["sandbox", "env", "--dir", str(box)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert f"export CEPH_CONF='{box}/ceph.conf'" in out
    assert any(line.startswith("export LIBVIRT_DEFAULT_URI=qemu:///") for line in out)


def test_usage_errors_exit_2():
    with pytest.raises(SystemExit) as err:
        cli.main(["sandbox", "explode"])
    assert err.value.code == 2
