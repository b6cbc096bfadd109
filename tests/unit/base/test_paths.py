"""Where rbdnb keeps things, as root and as an unprivileged user."""
from pathlib import Path

import pytest

from rbdnb.base import paths; from rbdnb import virt


@pytest.fixture
def as_user(monkeypatch, tmp_path):
    monkeypatch.setattr(paths.os, "geteuid", lambda: 1234)
    monkeypatch.setenv("HOME", str(tmp_path))
    for var in ("XDG_DATA_HOME", "XDG_RUNTIME_DIR", "RBDNB_DATA_DIR", "RBDNB_RUNTIME_DIR",
                "LIBVIRT_DEFAULT_URI"):
        monkeypatch.delenv(var, raising=False)
    return tmp_path


@pytest.fixture
def as_root(monkeypatch):
    monkeypatch.setattr(paths.os, "geteuid", lambda: 0)
    for var in ("RBDNB_DATA_DIR", "RBDNB_RUNTIME_DIR", "LIBVIRT_DEFAULT_URI"):
        monkeypatch.delenv(var, raising=False)


def test_root_serves_the_machine(as_root):
    assert paths.data_dir() == Path("/var/lib/rbdnb")
    assert paths.guest_dir() == Path("/var/lib/rbdnb/guest")
    assert paths.runtime_dir() == Path("/run/rbdnb")
    assert paths.default_libvirt_uri() == virt.default_uri() == "qemu:///system"
    daemons = paths.libvirt_daemons()
    assert daemons.libvirtd_socket == "/run/libvirt/libvirt-sock"
    assert daemons.virtlogd_pidfile == "/run/virtlogd.pid"


def test_a_user_keeps_to_its_own_directories(as_user):
    home = as_user
    assert paths.data_dir() == home / ".local/share/rbdnb"
    assert paths.guest_dir() == home / ".local/share/rbdnb/guest"
    assert paths.runtime_dir() == home / ".cache/rbdnb"
    assert paths.default_libvirt_uri() == virt.default_uri() == "qemu:///session"
    daemons = paths.libvirt_daemons()
    # libvirt's own layout for session daemons when XDG_RUNTIME_DIR is unset.
    assert daemons.libvirtd_socket == f"{home}/.cache/libvirt/libvirt-sock"
    assert daemons.virtlogd_socket == f"{home}/.cache/libvirt/virtlogd-sock"
    assert daemons.libvirtd_pidfile == f"{home}/.cache/libvirt/libvirtd.pid"


def test_xdg_and_rbdnb_variables_are_honoured(as_user, monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "run"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    assert paths.runtime_dir() == tmp_path / "run/rbdnb"
    assert paths.data_dir() == tmp_path / "data/rbdnb"
    assert paths.libvirt_daemons().libvirtd_socket == f"{tmp_path}/run/libvirt/libvirt-sock"
    monkeypatch.setenv("RBDNB_DATA_DIR", str(tmp_path / "mine"))
    monkeypatch.setenv("RBDNB_RUNTIME_DIR", str(tmp_path / "rt"))
    assert paths.data_dir() == tmp_path / "mine"
    assert paths.runtime_dir() == tmp_path / "rt"
    monkeypatch.setenv("LIBVIRT_DEFAULT_URI", "qemu+ssh://host/system")
    assert virt.default_uri() == "qemu+ssh://host/system"
