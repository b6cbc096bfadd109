"""The kernel "Python 3 (rbdnb)": installed, started by Jupyter, with the extension pre-loaded."""
import json
import os
import subprocess
import sys

from jupyter_client.manager import start_new_kernel

from rbdnb.runbooks import kernelspec
from rbdnb.sandbox import new_cephx_key


def test_kernel_spec_is_installed_with_the_venv_python():
    where = kernelspec.install()
    spec = json.loads(open(f"{where}/kernel.json").read())
    assert spec["display_name"] == "Python 3 (rbdnb)"
    assert spec["argv"][0] == sys.executable and "--ext=rbdnb" in spec["argv"]
    listed = json.loads(subprocess.run([sys.executable, "-m", "jupyter", "kernelspec", "list",
                                        "--json"], capture_output=True, check=True,
                                       timeout=60).stdout)
    assert listed["kernelspecs"]["rbdnb"]["spec"]["display_name"] == "Python 3 (rbdnb)"
    assert kernelspec.install() == where  # a second install changes nothing


def _run(client, code, timeout=60):
    """Execute ``code``; return (stdout text, error name or None)."""
    msg_id = client.execute(code)
    out, error = [], None
    while True:
        msg = client.get_iopub_msg(timeout=timeout)
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        kind, content = msg["msg_type"], msg["content"]
        if kind == "stream":
            out.append(content["text"])
        elif kind in ("execute_result", "display_data"):
            out.append(content["data"].get("text/plain", ""))
        elif kind == "error":
            error = content["ename"] + ": " + content["evalue"]
        elif kind == "status" and content["execution_state"] == "idle":
            return "".join(out), error


def test_the_kernel_preloads_the_magics_and_guards_output(sandbox):
    kernelspec.install()
    manager, client = start_new_kernel(kernel_name="rbdnb", startup_timeout=60)
    try:
        out, error = _run(client, "%rbd --help")
        assert error is None and "snap rollback" in out
        out, error = _run(client, f"%rbdnb connect --conf {sandbox.conf_path}\n"
                                  "%ceph health")
        assert error is None and "HEALTH_OK" in out
        key = new_cephx_key()
        out, _ = _run(client, f"print('k={key}')")
        assert key not in out and "[cephx key redacted]" in out
        # A user error is one line on stderr, not a traceback.
        out, error = _run(client, "%rbd info nopool/x")
        assert "UsageError: pool nopool not found" in out
        assert "Traceback" not in out and len(out.strip().splitlines()) == 1
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)


# ipykernel forwards what subprocesses write to fds 1 and 2 into the notebook, except under
# pytest (it sees PYTEST_CURRENT_TEST): the kernels here run as they would for a user.
NOT_PYTEST = {k: v for k, v in os.environ.items() if k != "PYTEST_CURRENT_TEST"}


def _all_messages(client, code, timeout=60):
    """Every message the kernel sends for ``code`` (iopub and the shell reply), as JSON text."""
    msg_id = client.execute(code)
    seen = []
    while True:
        msg = client.get_iopub_msg(timeout=timeout)
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        seen.append(json.dumps(msg["content"]))
        if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
            break
    seen.append(json.dumps(client.get_shell_msg(timeout=timeout)["content"]))
    return "\n".join(seen)


def test_no_output_path_of_the_kernel_carries_a_key(sandbox):
    """Not only print and display: a cell's last expression, a traceback, what subprocesses
    write to fds 1 and 2, a key split across two writes, and the shell replies."""
    kernelspec.install()
    key = new_cephx_key()
    manager, client = start_new_kernel(kernel_name="rbdnb", startup_timeout=60, env=NOT_PYTEST)
    try:
        cells = [f"key = {key!r}\nkey",                                  # execute_result
                 "raise ValueError(key)",                                 # traceback
                 "import os\nos.system(f'echo {key}; echo {key} >&2')",  # fd-level output
                 "!echo {key}",                                           # IPython's !
                 "import sys, time\nsys.stdout.write(key[:17]); sys.stdout.flush()\n"
                 "time.sleep(0.5)\nsys.stdout.write(key[17:] + '\\n')",  # split in two
                 "from IPython.display import display, HTML\ndisplay(HTML(f'<b>{key}</b>'))",
                 "{'nested': [key]}"]
        for code in cells:
            text = _all_messages(client, code)
            assert key not in text, code
            assert key[:20] not in text or "redacted" in text, code
        # The kernel still shows what is not a key.
        out, _ = _run(client, "print('AQ is not a key')")
        assert "AQ is not a key" in out
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)


def test_papermill_never_saves_a_key_even_before_rbdnbs_scrub(sandbox, tmp_path):
    """Plain papermill (no rbdnb run, so no final scrub): the notebook it saves after each
    cell, and what the kernel echoes to papermill's own output, hold no key."""
    import nbformat
    from nbformat.v4 import new_code_cell, new_notebook
    key = new_cephx_key()
    nb = new_notebook(metadata={"kernelspec": {"name": "rbdnb", "display_name": "rbdnb",
                                               "language": "python"}})
    secret = tmp_path / "key"  # the notebook reads the key: it is in no cell's source
    secret.write_text(key)
    nb.cells = [new_code_cell(f"key = open({str(secret)!r}).read()\nkey"),
                new_code_cell("import os\nos.system(f'echo {key}')"),
                new_code_cell("print(key)")]
    source, out = tmp_path / "in.ipynb", tmp_path / "out.ipynb"
    nbformat.write(nb, str(source))
    proc = subprocess.run([sys.executable, "-m", "papermill", str(source), str(out),
                           "-k", "rbdnb", "--log-output"],
                          capture_output=True, text=True, timeout=300, env=NOT_PYTEST)
    assert proc.returncode == 0, proc.stderr[-800:]
    assert key not in out.read_text()
    assert key not in proc.stdout + proc.stderr
    assert "[cephx key redacted]" in out.read_text()


def test_the_kernel_spec_is_readable_by_other_users():
    import stat
    where = kernelspec.install()
    assert stat.S_IMODE(os.stat(where).st_mode) == 0o755
    assert stat.S_IMODE(os.stat(f"{where}/kernel.json").st_mode) == 0o644
