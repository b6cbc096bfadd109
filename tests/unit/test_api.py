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
