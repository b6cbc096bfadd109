"""The public API: an explicit, sorted ``rbdnb.__all__``; every name in it exists and is
documented."""
import inspect

import rbdnb


def test_all_is_explicit_sorted_and_complete():
    assert rbdnb.__all__ == sorted(rbdnb.__all__)
    assert len(set(rbdnb.__all__)) == len(rbdnb.__all__)
    assert [n for n in rbdnb.__all__ if not hasattr(rbdnb, n)] == []
    for name in ("connect", "clone_many", "import_image", "copy_image", "free_space",
                 "Sandbox", "virt", "RbdnbError"):
        assert name in rbdnb.__all__


def test_every_public_function_and_class_has_a_docstring():
    undocumented = [n for n in rbdnb.__all__
                    if (inspect.isfunction(getattr(rbdnb, n)) or inspect.isclass(getattr(rbdnb, n)))
                    and not inspect.getdoc(getattr(rbdnb, n))]
    assert undocumented == []


def test_every_public_function_and_class_of_every_module_has_a_docstring():
    import ast
    from pathlib import Path
    package = Path(rbdnb.__file__).parent
    missing = [f"{p.relative_to(package)}:{n.lineno} {n.name}"
               for p in sorted(package.rglob("*.py"))
               for n in ast.parse(p.read_text()).body
               if isinstance(n, (ast.FunctionDef, ast.ClassDef)) and not n.name.startswith("_")
               and not ast.get_docstring(n)]
    assert missing == []


def test_virt_all_is_sorted_and_complete():
    from rbdnb import virt
    assert virt.__all__ == sorted(virt.__all__)
    assert [n for n in virt.__all__ if not hasattr(virt, n)] == []
    for name in ("attach_rbd", "define_vm", "ensure_secret", "ensure_rbd_pool", "guest",
                 "objects_on_cluster", "DomainNotFound"):
        assert name in virt.__all__
