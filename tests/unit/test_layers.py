"""The package's layers, checked: every module imports only its own layer or lower ones,
and no two modules import each other, directly or round about -- imports inside functions
count too, since they are how cycles hide. A layer is a directory (``ls rbdnb`` shows them):

1. ``errors.py`` -- the error tree;
2. ``base/`` -- units and the range check, specs, plans and results, secrets, paths,
   settings, bounded waiting, the subprocess runner;
3. ``ceph/`` -- the connection and everything done on a cluster;
4. ``virt/`` -- libvirt and the test guest;
5. ``bench/`` -- benchmark engines, cases and plots;
6. ``sandbox/`` -- a user of the library: the embedded cluster and libvirtd, the smoke
   check, the same-run comparisons against the native tools; and the public facade
   ``rbdnb/__init__.py``, which re-exports the API (and hands ``%load_ext rbdnb`` to the
   magics), so may import any module;
7. front ends -- ``magics/``, ``runbooks/``, ``server/``, ``cli.py``, ``widgets.py``,
   ``labext.py``, ``__main__.py``.
"""
import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "rbdnb"

# The layer of a module: the first prefix that matches, lowest layer first.
LAYERS = [
    ("errors", ["rbdnb.errors"]),
    ("base", ["rbdnb.base"]),
    ("ceph", ["rbdnb.ceph"]),
    ("virt", ["rbdnb.virt"]),
    ("bench", ["rbdnb.bench"]),
    ("tools", ["rbdnb.sandbox", "rbdnb"]),
    ("front ends", ["rbdnb.magics", "rbdnb.runbooks", "rbdnb.server", "rbdnb.cli",
                    "rbdnb.widgets", "rbdnb.labext", "rbdnb.__main__"]),
]


def layer_of(module: str) -> tuple[int, str]:
    for rank, (name, prefixes) in reversed(list(enumerate(LAYERS))):
        if any(module == p or module.startswith(p + ".") for p in prefixes if p != "rbdnb"):
            return rank, name
    if module == "rbdnb":
        return 5, "tools"
    raise AssertionError(f"{module} is in no layer: add its directory to LAYERS")


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    """The rbdnb modules ``name`` imports anywhere in its source."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "rbdnb"}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            elif node.module and node.module.split(".")[0] == "rbdnb":
                target = node.module
            else:
                continue
            # `from . import x` names a module; `from .x import y` may name one too.
            subs = {f"{target}.{a.name}" for a in node.names} & known
            found |= subs or {target}
    found.discard(name)
    return {m for m in found if m in known}


def graph() -> dict[str, set[str]]:
    mods = modules()
    return {name: imports_of(name, path, set(mods)) for name, path in mods.items()}


def test_every_module_has_a_layer_and_the_tree_shows_them():
    for name in modules():
        layer_of(name)
    top = sorted(p.name for p in PACKAGE.iterdir() if not p.name.startswith((".", "__pycache__")))
    assert {"base", "ceph", "virt", "bench", "sandbox", "magics", "runbooks", "server"} <= set(top)
    flat = [n for n in top if n.endswith(".py")]
    assert set(flat) <= {"__init__.py", "__main__.py", "errors.py", "cli.py", "widgets.py",
                         "labext.py"}, flat


def test_imports_only_go_down():
    upward = []
    for m, deps in graph().items():
        if m == "rbdnb":
            continue
        for d in sorted(deps):
            if layer_of(d)[0] > layer_of(m)[0]:
                upward.append(f"{m} ({layer_of(m)[1]}) imports {d} ({layer_of(d)[1]})")
    assert upward == []


def test_no_import_cycle():
    deps = graph()
    state: dict[str, int] = {}
    cycles = []

    def visit(node, stack):
        state[node] = 1
        for dep in sorted(deps[node]):
            if dep == "rbdnb" or node == "rbdnb":
                continue  # the facade re-exports; its own imports are checked by layer
            if state.get(dep) == 1:
                cycles.append(" -> ".join(stack[stack.index(dep):] + [dep]))
            elif dep not in state:
                visit(dep, stack + [dep])
        state[node] = 2

    for name in sorted(deps):
        if name not in state:
            visit(name, [name])
    assert cycles == []


@pytest.mark.parametrize("where, source, expected", [
    ("ceph/x.py", "from . import images", {"rbdnb.ceph.images"}),
    ("ceph/x.py", "from .images import open_image", {"rbdnb.ceph.images"}),
    ("x.py", "def f():\n    from .sandbox import Sandbox", {"rbdnb.sandbox"}),
    ("x.py", "import rbdnb.virt", {"rbdnb.virt"}),
    ("bench/x.py", "from .. import errors", {"rbdnb.errors"}),
    ("bench/x.py", "from ..ceph import images", {"rbdnb.ceph.images"}),
    ("ceph/x.py", "from ..base.specs import parse_spec", {"rbdnb.base.specs"}),
])
def test_the_checker_sees_every_form_of_import(tmp_path, where, source, expected):
    path = tmp_path / "rbdnb" / where
    path.parent.mkdir(parents=True)
    path.write_text(source)
    name = "rbdnb." + where[:-3].replace("/", ".")
    known = {"rbdnb.ceph.images", "rbdnb.sandbox", "rbdnb.virt", "rbdnb.errors", "rbdnb.bench",
             "rbdnb.ceph", "rbdnb.base.specs"}
    assert imports_of(name, path, known) == expected


def test_no_module_reaches_into_anothers_private_names():
    mods = modules()
    reached = []
    for name, path in mods.items():
        tree = ast.parse(path.read_text(), str(path))
        aliases = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.level or
                                                     (node.module or "").startswith("rbdnb")):
                for a in node.names:
                    if a.name.startswith("_") and not a.name.startswith("__"):
                        reached.append(f"{name} imports {a.name}")
                    aliases.add(a.asname or a.name)
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) \
                    and node.value.id in aliases and node.attr.startswith("_") \
                    and not node.attr.startswith("__"):
                reached.append(f"{name} uses {node.value.id}.{node.attr}")
    assert reached == []
