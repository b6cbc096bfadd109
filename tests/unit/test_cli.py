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


def test_bench_scale_checks_its_sizes_and_its_dry_run_starts_nothing(capsys):
    assert cli.main(["bench", "scale", "--sizes", "100,lots"]) == 1
    assert capsys.readouterr().err.strip() == (
        "rbdnb: --sizes '100,lots' is not valid: expected whole numbers separated by commas, "
        "e.g. 100,1000")
    assert cli.main(["bench", "scale", "--sizes", "0"]) == 1
    assert "--sizes" in capsys.readouterr().err
    assert cli.main(["bench", "scale", "--sizes", "100,1000", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("plan: rbdnb bench scale") and "100, 1000 clones" in out


def test_docs_build_refuses_missing_scale_results_before_any_runbook(capsys, tmp_path):
    assert cli.main(["docs", "build", str(tmp_path / "site"), "--runbooks", str(tmp_path),
                     "--scale", str(tmp_path / "none.csv")]) == 1
    assert "scale results" in capsys.readouterr().err
