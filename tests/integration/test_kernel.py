"""The kernel "Python 3 (rbdnb)": installed, started by Jupyter, with the extension pre-loaded."""
import json
import subprocess
import sys

from jupyter_client.manager import start_new_kernel

from rbdnb import kernelspec
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
