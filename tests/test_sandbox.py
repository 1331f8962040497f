"""The local Python sandbox against hostile code, on every isolation backend this machine has.

Each attack must be contained (the call returns, in time, with a report the model can read)
and the host must be unharmed (its files, processes and network untouched).
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import time
import uuid
from pathlib import Path

import pytest
from turnwise.tools import Executor, ToolCall, ToolContext, ToolRegistry
from turnwise.tools.python import LocalSandbox, SandboxLimits, python_tool
from turnwise.tools.python.isolation import probe
from turnwise.tools.python.local import _UIDS
from turnwise.tools.python.result import ExecResult

KINDS = []
for _kind in ("bwrap", "unshare"):
    _reason = probe(_kind, os.sys.executable)
    KINDS.append(pytest.param(_kind, marks=pytest.mark.skipif(
        _reason is not None, reason=f"{_kind} sandbox unavailable here: {_reason}")))

LIMITS = SandboxLimits(wall_seconds=2.0, cpu_seconds=2.0, memory_mb=384, processes=24,
                       file_mb=4, disk_mb=16, output_bytes=4096)


def run(kind: str, code: str, limits: SandboxLimits = LIMITS) -> tuple[ExecResult, float]:
    async def go():
        async with LocalSandbox(limits, isolation=kind) as box:
            started = time.perf_counter()
            result = await box.run(code)
            return result, time.perf_counter() - started

    return asyncio.run(go())


def sandbox_processes() -> list[int]:
    """Host pids running as one of this process's sandbox uids."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                uid = int((entry / "status").read_text().split("Uid:")[1].split()[0])
            except (OSError, IndexError):
                continue
            if _UIDS.base <= uid < _UIDS.base + _UIDS.size:
                pids.append(int(entry.name))
    return pids


@pytest.mark.parametrize("kind", KINDS)
def test_host_files_are_hidden(kind, tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("host secret")
    code = (f"import os\n"
            f"for p in [{str(secret)!r}, {__file__!r}, '/etc/shadow', '/etc/passwd', '/root/.bashrc']:\n"
            f"    print(p, os.path.exists(p))\n"
            f"open({str(secret)!r}).read()")
    result, _ = run(kind, code)
    assert result.stdout.splitlines() == [f"{p} False" for p in (
        secret, __file__, "/etc/shadow", "/etc/passwd", "/root/.bashrc")]
    assert result.error_type == "FileNotFoundError"


@pytest.mark.parametrize("kind", KINDS)
def test_writes_outside_the_private_tmp_fail_and_tmp_is_private(kind):
    venv = Path(os.sys.prefix)
    marker = f"turnwise-probe-{uuid.uuid4().hex}"
    code = (f"import os, sys\n"
            f"for p in ['/usr/lib/{marker}', sys.prefix + '/lib/{marker}', '/{marker}', '/dev/{marker}']:\n"
            f"    try:\n        open(p, 'w').write('x'); print('wrote', p)\n"
            f"    except OSError as e:\n        print(type(e).__name__, e.errno)\n"
            f"open('/tmp/{marker}', 'w').write('inside')\n"
            f"print(os.getuid() != 0, open('/tmp/{marker}').read())")
    result, _ = run(kind, code)
    lines = result.stdout.splitlines()
    assert all(line.split()[0] in ("OSError", "PermissionError") for line in lines[:4]), lines
    # Not uid 0, and /tmp is writable inside. (Run without root, unshare maps the host user to
    # uid 0 of a user namespace, where it holds no capability.)
    assert lines[4] == f"{os.geteuid() == 0 or kind == 'bwrap'} inside"
    for host_path in (f"/usr/lib/{marker}", venv / "lib" / marker, f"/{marker}", f"/tmp/{marker}"):
        assert not os.path.exists(host_path)


@pytest.mark.parametrize("kind", KINDS)
def test_a_venv_under_a_home_folder_is_seen_at_opt_venv_only(kind, tmp_path):
    home = tmp_path / "home"
    venv = home / ".cache" / "venv"
    base = getattr(os.sys, "_base_executable", os.sys.executable)
    subprocess.run([base, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    site = next(venv.glob("lib/python*/site-packages"))
    (site / "turnwise_probe_marker.py").write_text("VALUE = 42\n")
    code = (f"import os, subprocess, sys, turnwise_probe_marker\n"
            f"print(sys.prefix, sys.executable, turnwise_probe_marker.VALUE)\n"
            f"for p in [{str(home)!r}, {str(home / '.cache')!r}, {str(venv)!r}]:\n"
            f"    print(p, os.path.exists(p))\n"
            f"print(sorted(os.listdir('/opt/venv')))\n"
            f"cmd = [sys.executable, '-c', 'import turnwise_probe_marker as m; print(m.VALUE)']\n"
            f"print(subprocess.run(cmd, capture_output=True, text=True).stdout.strip())")

    async def go():
        async with LocalSandbox(LIMITS, isolation=kind, python=str(venv / "bin" / "python")) as box:
            return await box.run(code)

    result = asyncio.run(go())
    lines = result.stdout.splitlines()
    # A real virtual environment (its subprocesses find its packages), at a path that names
    # nothing of the host; the home folder it lives in does not exist inside.
    assert lines[0] == "/opt/venv /opt/venv/bin/python 42", result
    assert lines[1:4] == [f"{p} False" for p in (home, home / ".cache", venv)], lines
    # Only what the interpreter needs: its config, bin/python and the packages (no include/).
    assert lines[4] == str(sorted({"bin", "lib", "pyvenv.cfg"} | (
        {"lib64"} if (venv / "lib64").exists() else set()))), lines
    assert lines[5] == "42", result


@pytest.mark.parametrize("kind", KINDS)
def test_cells_run_as_in_a_plain_interpreter(kind):
    # The runner runs inside the confine step's interpreter: it must look like `python -I -c`.
    code = ("import sys\n"
            "print(__name__, type(__builtins__).__name__, sys.flags.isolated, callable(exit))\n"
            "print(sys.argv[0], any(p.endswith('site-packages') for p in sys.path))")
    result, _ = run(kind, code)
    assert result.stdout.splitlines() == ["__main__ module 1 True", "-c True"], result


@pytest.mark.parametrize("kind", KINDS)
def test_no_network(kind):
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    port = server.getsockname()[1]
    code = (f"import socket\n"
            f"for target in [('127.0.0.1', {port}), ('1.1.1.1', 53)]:\n"
            f"    try:\n        socket.create_connection(target, timeout=1); print('connected')\n"
            f"    except OSError as e:\n        print(type(e).__name__)\n"
            f"try:\n    socket.getaddrinfo('pypi.org', 443); print('resolved')\n"
            f"except OSError as e:\n    print(type(e).__name__)")
    result, _ = run(kind, code)
    server.setblocking(False)
    with pytest.raises(BlockingIOError):  # the host's server never saw a connection
        server.accept()
    server.close()
    assert "connected" not in result.stdout and "resolved" not in result.stdout
    assert len(result.stdout.splitlines()) == 3


@pytest.mark.parametrize("kind", KINDS)
def test_fork_bomb(kind):
    bystander = subprocess.Popen(["sleep", "30"])
    try:
        code = ("import os\ntry:\n    os.kill(-1, 9)\nexcept ProcessLookupError:\n    pass\n"
                "while True:\n    os.fork()")
        result, seconds = run(kind, code)
        assert result.error_type == "BlockingIOError" and "Resource temporarily unavailable" in result.error
        assert not result.died and seconds < LIMITS.wall_seconds + 2  # no host kill needed
        assert bystander.poll() is None  # kill(-1) inside reached nothing of the host
        assert subprocess.run(["true"]).returncode == 0  # the host can still start processes
        assert sandbox_processes() == []  # nothing of the sandbox survived it
    finally:
        bystander.kill()
        bystander.wait()


@pytest.mark.parametrize("kind", KINDS)
def test_memory_hog(kind):
    # Filling 384 MiB takes 0.4 s on an idle machine; the wall limit leaves room for a busy one.
    limits = SandboxLimits(wall_seconds=30.0, cpu_seconds=30.0, memory_mb=384, output_bytes=4096)
    code = "x = []\nwhile True:\n    x.append(bytearray(16 * 1024 * 1024))"
    result, _ = run(kind, code, limits)
    assert result.error_type == "MemoryError" and not result.died, result
    assert "MemoryError: memory limit reached" in result.text(limits)


@pytest.mark.parametrize("kind", KINDS)
def test_infinite_loop_hits_the_wall_clock(kind):
    limits = SandboxLimits(wall_seconds=1.0, cpu_seconds=10.0, output_bytes=4096)
    result, seconds = run(kind, "while True:\n    pass", limits)
    # The runner's own alarm stopped it (the host's kill would come 2 s later and mark it died).
    assert result.error_type == "Timeout" and not result.died and seconds < 1.0 + 2.0
    assert "ran longer than 1 s (wall-clock limit)" in result.text(limits)


@pytest.mark.slow
def test_cpu_limit():
    available = [p.values[0] for p in KINDS if not p.marks[0].args[0]]
    if not available:
        pytest.skip("no sandbox isolation is available here")
    kind = available[0]  # the limit is the runner's, the same under every isolation
    limits = SandboxLimits(wall_seconds=20.0, cpu_seconds=1.0, output_bytes=4096)
    result, seconds = run(kind, "while True:\n    pass", limits)
    # RLIMIT_CPU counts whole seconds: the cell gets ceil(startup CPU + 1 s) <= 2 s of CPU,
    # and stops long before the 20 s wall limit even on a busy machine.
    assert result.error_type == "CPULimit" and 1.0 <= result.cpu_seconds <= 2.1
    assert seconds < 15
    assert "used more than 1 s of CPU time" in result.text(limits)


@pytest.mark.slow
@pytest.mark.parametrize("kind", KINDS)
def test_a_loop_that_swallows_the_timeout_is_killed_by_the_host(kind):
    limits = SandboxLimits(wall_seconds=1.0, output_bytes=4096)
    code = "try:\n    while True:\n        pass\nfinally:\n    while True:\n        pass"
    result, seconds = run(kind, code, limits)
    assert result.died and result.timed_out
    # The host waits GRACE = 2 s past the 1 s wall limit, then kills (slack for a busy machine).
    assert 1.0 + 2.0 <= seconds < 1.0 + 2.0 + 5.0
    assert sandbox_processes() == []


@pytest.mark.parametrize("kind", KINDS)
def test_huge_output_is_cut(kind):
    code = "import sys\nfor _ in range(100):\n    sys.stdout.write('y' * 1_000_000)"
    result, _ = run(kind, code)
    # The 4 MiB file-size limit stops the writer; the host reads back 4096 bytes of it.
    assert result.stdout == "y" * 4096 and result.stdout_bytes == 4 * 1024 * 1024
    assert result.error_type == "OSError" and "File too large" in result.error
    assert "[stdout truncated: 4194304 bytes written, the first 4096 shown]" in result.text(LIMITS)


@pytest.mark.parametrize("kind", KINDS)
def test_sessions_keep_state_but_not_processes(kind):
    async def go():
        async with LocalSandbox(LIMITS, isolation=kind) as box:
            first = await box.run("import subprocess\nchild = subprocess.Popen(['sleep', '60'])\n"
                                  "x = 41\nchild.pid")
            second = await box.run(f"import os\ntry:\n    os.kill({first.value}, 0); print('alive')\n"
                                   "except ProcessLookupError:\n    print('gone')\nx + 1")
            return first, second

    first, second = asyncio.run(go())
    assert first.value.isdigit()
    assert second.stdout == "gone\n" and second.value == "42"


@pytest.mark.parametrize("kind", KINDS)
def test_the_tool_reports_through_the_executor(kind):
    stateful = python_tool(stateful=True, isolation=kind, limits={"wall_seconds": 1.0})
    stateless = python_tool(isolation=kind, name="py_once")
    ex = Executor(ToolRegistry([stateful, stateless]))

    async def go():
        ctx = ToolContext()
        out = [await ex.call(ToolCall("python", {"code": c}), ctx)
               for c in ("y = 6 * 7", "print(y)", "import time; time.sleep(5)")]
        out.append(await ex.call(ToolCall("py_once", {"code": "print(y)"}), ctx))
        await ctx.aclose()
        return out

    assign, show, slow, fresh = asyncio.run(go())
    assert (assign.status, assign.content) == ("ok", "(no output)")
    assert (show.status, show.content) == ("ok", "42")
    assert slow.status == "timeout" and "wall-clock limit" in slow.content
    assert fresh.status == "ok" and "NameError: name 'y' is not defined" in fresh.content
    assert ex.metrics.summary()["tools/python/timeouts"] == 1
    assert sandbox_processes() == []


@pytest.mark.parametrize("kind", KINDS)
def test_a_sandbox_restarts_after_dying_and_odd_sources_are_reported(kind):
    async def go():
        box = LocalSandbox(LIMITS, isolation=kind)
        try:
            first = await box.run("import os\nos._exit(5)")
            uid = box._uid
            second = await box.run("'a\\x00b' + 'c'\nprint(1)\x00")
            third = await box.run("print('back')")
            return first, second, third, uid, box._uid
        finally:
            await box.close()

    first, second, third, uid_before, uid_after = asyncio.run(go())
    assert first.died and first.exit_status == 5
    assert second.error_type in ("SyntaxError", "ValueError") and not second.died
    assert third.stdout == "back\n"
    assert (uid_before is None) == (uid_after is None)
    assert len(_UIDS.free) == _UIDS.size  # every uid went back to the pool


def test_configuration_errors_come_at_construction():
    with pytest.raises(ValueError, match="isolation='chroot': allowed are 'auto', 'bwrap', 'unshare'"):
        python_tool(isolation="chroot")
    with pytest.raises(ValueError, match=r"sandbox limits \['memory'\] are unknown; did you "
                                         r"mean 'memory_mb'\? allowed are"):
        python_tool(limits={"memory": 10})
    with pytest.raises(ValueError, match="wall_seconds=0 must be > 0"):
        SandboxLimits(wall_seconds=0)
    with pytest.raises(ValueError, match="backend='docker': allowed are"):
        python_tool(backend="docker")
