import pytest
from IPython.core.interactiveshell import InteractiveShell


def run(shell, cell):
    """Run one cell; raise what it raised, else return its value."""
    result = shell.run_cell(cell, store_history=False)
    error = result.error_in_exec or result.error_before_exec
    if error is not None:
        raise error
    return result.result


@pytest.fixture
def shell(fake_ceph):
    """An IPython shell with rbdnb's magics, connected to the fake cluster."""
    ip = InteractiveShell.instance()
    run(ip, "%load_ext rbdnb")
    run(ip, f"%rbdnb connect --conf {fake_ceph.conf} --uri test:///default")
    yield ip
    run(ip, "%config RbdnbMagics.dry_run = False")
