import subprocess
import sys
import time

import pytest

from rbdnb.base import proc as _proc
from rbdnb.errors import CommandFailed, MissingTool, Timeout


def test_run_returns_output():
    assert _proc.run([sys.executable, "-c", "print('hi')"], timeout=10).stdout == b"hi\n"


def test_run_failure_names_the_program_and_its_last_error_line():
    with pytest.raises(CommandFailed) as err:
        _proc.run([sys.executable, "-c", "import sys; sys.stderr.write('one\\n\\x1b[0;31mtwo\\x1b[0m\\n'); sys.exit(3)"],
                  timeout=10, what="frobnicate")
    assert str(err.value) == "frobnicate failed: two"
    assert err.value.returncode == 3


def test_run_times_out_and_kills():
    t0 = time.monotonic()
    with pytest.raises(Timeout, match="did not finish within 0.5 s"):
        _proc.run([sys.executable, "-c", "import time; time.sleep(30)"], timeout=0.5)
    assert time.monotonic() - t0 < 10


def test_missing_program_names_the_debian_package(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(_proc, "_EXTRA_PATH", ())
    with pytest.raises(MissingTool) as err:
        _proc.which("ceph-mon")
    assert "apt-get install ceph-mon" in str(err.value)
    with pytest.raises(MissingTool, match="libvirt-clients"):
        _proc.run(["virsh", "version"], timeout=5)


def test_quote_renders_a_shell_line():
    assert _proc.quote(["rbd", "create", "a b", "--size", 10]) == "rbd create 'a b' --size 10"


def test_process_ref_stops_only_the_process_it_names():
    proc = subprocess.Popen(["sleep", "30"])
    try:
        ref = _proc.ProcessRef.of("sleep", proc.pid)
        assert ref is not None and ref.alive()
        # Same pid, another start time: a recycled pid must never be signalled.
        impostor = _proc.ProcessRef("sleep", proc.pid, ref.started + 1)
        assert not impostor.alive()
        assert impostor.stop(timeout=1) is False
        assert proc.poll() is None
        assert ref.stop(timeout=5) is True
        assert not ref.alive()
        assert proc.wait(timeout=5) is not None
    finally:
        proc.kill()
        proc.wait()


def test_process_ref_of_a_gone_pid_is_none():
    proc = subprocess.Popen(["true"])
    proc.wait()
    assert _proc.ProcessRef.of("true", proc.pid) is None


def test_process_ref_json_round_trip():
    ref = _proc.ProcessRef("ceph-mon", 42, 1234)
    assert _proc.ProcessRef.from_json(ref.to_json()) == ref


def test_watch_streams_output_and_stops_the_program_when_a_tick_raises():
    import time as _time
    from rbdnb.base.proc import watch
    from rbdnb.errors import CommandFailed, Timeout
    seen = []
    out, err = watch(["sh", "-c", "echo 10%; sleep 0.3; echo 50%; echo done >&2"],
                     lambda w: seen.append(w.fresh))
    assert out == "10%\n50%\n" and err == "done\n"
    assert b"10%\n" in seen and len([c for c in seen if c]) >= 2  # arrived in two parts
    t0 = _time.monotonic()

    def stall(w):
        if w.elapsed > 0.3:
            raise Timeout("made no progress")
    with pytest.raises(Timeout):
        watch(["sleep", "30"], stall)
    assert _time.monotonic() - t0 < 10  # killed, not waited for
    with pytest.raises(CommandFailed, match="false failed: exit status 1"):
        watch(["false"], lambda w: None)


def test_watch_lets_a_tick_signal_the_program():
    import signal as _signal
    from rbdnb.base.proc import watch
    sent = []

    def interrupt(w):
        if w.elapsed > 0.2 and not sent and w.proc.poll() is None:
            w.proc.send_signal(_signal.SIGINT)
            sent.append(True)
    out, _ = watch(["sh", "-c", "trap 'echo stopped; exit 0' INT; while :; do sleep 0.05; done"],
                   interrupt)
    assert sent and out == "stopped\n"
