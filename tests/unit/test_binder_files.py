"""binder/: the pins are what the tests run with; the scripts are what repo2docker runs."""

import importlib.metadata as md
import os
import re
import stat
import subprocess
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
BINDER = ROOT / "binder"


def pins() -> dict[str, str]:
    found = {}
    for line in (BINDER / "requirements.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            name, sep, version = line.partition("==")
            assert sep and re.fullmatch(r"[A-Za-z0-9_.-]+", name), f"not a pin: {line!r}"
            found[canonicalize_name(name)] = version
    return found


def test_every_pin_is_the_version_the_tests_run_with():
    wrong = {}
    for name, version in pins().items():
        try:
            installed = md.version(name)
        except md.PackageNotFoundError:
            installed = None
        if installed != version:
            wrong[name] = (version, installed)
    assert not wrong, f"pinned vs installed (run scripts/setup.sh --no-run): {wrong}"


def test_the_pins_cover_every_runtime_dependency_and_theirs():
    pinned = pins()
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    todo = [Requirement(r) for r in project["dependencies"]]
    seen = set()
    while todo:
        req = todo.pop()
        name = canonicalize_name(req.name)
        if name in seen:
            continue
        seen.add(name)
        assert name in pinned, f"{name} (needed by rbdnb) is not pinned"
        assert req.specifier.contains(pinned[name], prereleases=True), (name, pinned[name])
        for dep in md.requires(name) or []:
            dep = Requirement(dep)
            if dep.marker is None or dep.marker.evaluate({"extra": ""}):
                todo.append(dep)
    assert len(seen) > 50  # jupyterlab alone brings dozens


def test_apt_txt_is_a_plain_package_list():
    names = [line.split("#")[0].strip()
             for line in (BINDER / "apt.txt").read_text().splitlines()]
    names = [n for n in names if n]
    assert len(names) == len(set(names))
    assert all(re.fullmatch(r"[a-z0-9][a-z0-9.+-]+", n) for n in names), names
    for needed in ("ceph-mon", "ceph-osd", "ceph-mgr", "python3-rados", "python3-rbd",
                   "libvirt-daemon-system", "python3-libvirt", "qemu-system-x86"):
        assert needed in names


def test_the_scripts_are_executable_and_parse():
    for name in ("postBuild", "start"):
        path = BINDER / name
        assert path.stat().st_mode & stat.S_IXUSR, f"binder/{name} is not executable"
        assert path.read_text().startswith("#!/usr/bin/env bash\n")
        subprocess.run(["bash", "-n", str(path)], check=True)
    # repo2docker's contract for start: it ends by running the command it was given.
    lines = [l for l in (BINDER / "start").read_text().splitlines() if l and l[0] != "#"]
    assert lines[-1] == 'exec "$@"'


def test_runtime_matches_debians_python_for_the_bindings():
    # The bindings postBuild links in are built for Debian 12's python3 (3.11).
    assert (BINDER / "runtime.txt").read_text().strip() == "python-3.11"
    assert os.path.exists("/usr/bin/python3")
    out = subprocess.run(["/usr/bin/python3", "-c", "import sys; print(sys.version_info[:2])"],
                         capture_output=True, text=True, check=True).stdout
    assert out.strip() == "(3, 11)"
