"""Hostile programs in the local Python sandbox, beyond tests/test_sandbox.py (which covers
/etc/shadow, writes outside /tmp, sockets, fork and memory bombs, spins and floods one by one):
reading the user's home, killing the parent, escaping through /proc, host sockets; and the
resource attacks again, now with the host watching the sandbox's process tree to measure the
time, peak memory and peak process count each one reached. The host is checked after each."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest
from fault_ledger import figure, record
from turnwise.tools.python import LocalSandbox, SandboxLimits
from turnwise.tools.python.isolation import probe
from turnwise.tools.python.local import _UIDS

KIND = next((k for k in ("bwrap", "unshare") if probe(k, os.sys.executable) is None), None)
pytestmark = pytest.mark.skipif(KIND is None, reason="no sandbox isolation works here")
LIMITS = SandboxLimits(wall_seconds=2.0, cpu_seconds=2.0, memory_mb=256, processes=24,
                       file_mb=4, disk_mb=16, output_bytes=4096)
PAGE = os.sysconf("SC_PAGE_SIZE")


class TreeWatch:
    """Samples the process tree under `root` every 10 ms: peak summed RSS and process count."""

    def __init__(self, root: int) -> None:
        self.root, self.peak_rss, self.peak_procs = root, 0, 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self) -> None:
        while True:
            parents, rss = {}, {}
            for entry in os.scandir("/proc"):
                if entry.name.isdigit():
                    try:
                        stat = Path(entry.path, "stat").read_text()
                        statm = Path(entry.path, "statm").read_text().split()
                    except OSError:
                        continue
                    fields = stat.rsplit(")", 1)[1].split()
                    parents[int(entry.name)] = int(fields[1])
                    rss[int(entry.name)] = int(statm[1]) * PAGE
            tree, frontier = {self.root}, [self.root]
            while frontier:
                pid = frontier.pop()
                children = [p for p, parent in parents.items() if parent == pid and p not in tree]
                tree.update(children)
                frontier += children
            self.peak_rss = max(self.peak_rss, sum(rss.get(p, 0) for p in tree))
            self.peak_procs = max(self.peak_procs, len(tree & set(parents)))
            if self.stop.wait(0.01):
                return

    def close(self) -> tuple[float, int]:
        self.stop.set()
        self.thread.join()
        return self.peak_rss / 2**20, self.peak_procs


def attack(code: str, limits: SandboxLimits = LIMITS):
    async def go():
        async with LocalSandbox(limits, isolation=KIND) as box:
            watch = TreeWatch(box.proc.pid)
            started = time.perf_counter()
            result = await box.run(code)
            seconds = time.perf_counter() - started
            return result, seconds, *watch.close()

    return asyncio.run(go())


def host_is_clean() -> None:
    """Nothing of any sandbox is left, and the host can still start processes."""
    assert subprocess.run(["true"]).returncode == 0
    if os.geteuid() == 0:
        leftover = [e.name for e in os.scandir("/proc") if e.name.isdigit()
                    and _uid_of(e.path) in range(_UIDS.base, _UIDS.base + _UIDS.size)]
        assert leftover == []


def _uid_of(path: str) -> int:
    try:
        return int(Path(path, "status").read_text().split("Uid:")[1].split()[0])
    except (OSError, IndexError):
        return -1


def test_the_users_home_and_host_secrets_are_out_of_reach(tmp_path):
    from turnwise.tools.python.isolation import interpreter

    home = Path(os.path.expanduser("~"))
    secret = tmp_path / "id_rsa"
    secret.write_text("PRIVATE KEY")
    code = (f"import os\n"
            f"for p in [{str(secret)!r}, '/etc/shadow', '/etc/ssh', '/var/log',\n"
            f"          {str(home / '.ssh')!r}, {str(home / '.cache')!r}, {str(home / '.bashrc')!r}]:\n"
            f"    print(p, os.path.exists(p))\n"
            f"print(sorted(os.listdir({str(home)!r})) if os.path.isdir({str(home)!r}) else [])\n"
            f"print(sorted(k for k in os.environ if 'KEY' in k or 'TOKEN' in k))")
    result, *_ = attack(code)
    lines = result.stdout.splitlines()
    assert all(line.endswith(" False") for line in lines[:7]), lines
    # The home exists inside only as the path to a Python installation that lives under it
    # (pyenv), holding nothing else; a virtual environment appears at /opt/venv, wherever it is.
    install = interpreter(os.sys.executable).install
    skeleton = sorted({Path(p).relative_to(home).parts[0] for p in install
                       if Path(p).is_relative_to(home) and Path(p) != home})
    assert lines[7] == repr(skeleton), lines[7]
    assert lines[8] == "[]"  # the environment was cleared: no credentials inherited
    host_is_clean()
    record("sandbox", "read the user's home / keys / env secrets", 3, 3)


def test_killing_the_parent_and_the_host_reaches_nothing():
    bystander = subprocess.Popen(["sleep", "30"])
    me = os.getpid()
    try:
        code = (f"import os, signal\n"
                f"for target in [os.getppid(), 1, {me}, {bystander.pid}, -1]:\n"
                f"    try:\n        os.kill(target, signal.SIGKILL); print(target, 'sent')\n"
                f"    except OSError as e:\n        print(target, type(e).__name__)\n"
                f"print('still running')")
        result, seconds, *_ = attack(code)
        # Inside its own pid namespace the parent is the sandbox's init, which the
        # unprivileged user may not signal; host pids do not exist there.
        lines = result.stdout.splitlines()
        assert lines[-1] == "still running" or result.died, result
        # Without root the code may signal its own init, which the kernel ignores from inside.
        allowed = ("-1",) if os.geteuid() == 0 else ("-1", "1")
        assert all(not line.endswith(" sent") or line.split()[0] in allowed for line in lines), lines
        assert bystander.poll() is None and os.getpid() == me
        host_is_clean()
    finally:
        bystander.kill()
        bystander.wait()
    record("sandbox", "kill the parent / init / host pids / everything", 5, 5)


def test_escapes_through_proc_fail():
    me = os.getpid()
    code = (f"import os\n"
            f"pids = sorted(int(p) for p in os.listdir('/proc') if p.isdigit())\n"
            f"print(len(pids) < 10, {me} in pids)\n"
            f"for p in ['/proc/1/root/etc/shadow', '/proc/{me}/environ', '/proc/{me}/root/etc/passwd',\n"
            f"          '/proc/self/root/../../etc/shadow', '/proc/sys/kernel/hostname']:\n"
            f"    try:\n        open(p).read(); print(p, 'read')\n"
            f"    except OSError as e:\n        print(p, type(e).__name__)\n"
            f"try:\n    open('/proc/sys/kernel/hostname', 'w').write('pwned'); print('wrote')\n"
            f"except OSError as e:\n    print('hostname', type(e).__name__)\n"
            f"try:\n    open('/proc/sysrq-trigger', 'w').write('b'); print('sysrq')\n"
            f"except OSError as e:\n    print('sysrq', type(e).__name__)")
    result, *_ = attack(code)
    lines = result.stdout.splitlines()
    assert lines[0] == "True False"  # a fresh /proc: only the sandbox's few processes
    reads = dict(line.rsplit(" ", 1) for line in lines[1:6])
    # /proc/1/root is the sandbox's own root (no shadow there); host pids are not visible.
    assert all(v != "read" for k, v in reads.items() if k != "/proc/sys/kernel/hostname"), reads
    assert lines[6].startswith("hostname ") and lines[7].startswith("sysrq "), lines
    assert socket.gethostname() != "pwned"
    host_is_clean()
    record("sandbox", "escape via /proc (root links, host pids, sysctl, sysrq)", 7, 7)


def test_a_host_unix_socket_is_not_reachable(tmp_path):
    path = tmp_path / "host.sock"
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(path))
    server.listen(1)
    code = (f"import socket\n"
            f"s = socket.socket(socket.AF_UNIX)\n"
            f"try:\n    s.connect({str(path)!r}); print('connected')\n"
            f"except OSError as e:\n    print(type(e).__name__)\n"
            f"try:\n    socket.socket(socket.AF_PACKET, socket.SOCK_RAW); print('raw')\n"
            f"except OSError as e:\n    print(type(e).__name__)")
    result, *_ = attack(code)
    server.setblocking(False)
    with pytest.raises(BlockingIOError):
        server.accept()
    server.close()
    assert result.stdout.split() == ["FileNotFoundError", "PermissionError"], result.stdout
    record("sandbox", "host unix socket / raw packet socket", 2, 2)


RESOURCE_ATTACKS = {
    "fork bomb": "import os\nwhile True:\n    os.fork()",
    "memory bomb": "x = []\nwhile True:\n    x.append(bytearray(16 * 1024 * 1024))",
    "CPU spin": "while True:\n    pass",
    "huge stdout": "import sys\nwhile True:\n    sys.stdout.write('y' * 1_000_000)",
    "disk fill": "f = open('/tmp/fill', 'wb')\nwhile True:\n    f.write(b'z' * 1_000_000)",
}


@pytest.mark.parametrize("name", list(RESOURCE_ATTACKS))
def test_resource_attacks_are_bounded_and_measured(name):
    result, seconds, peak_mb, peak_procs = attack(RESOURCE_ATTACKS[name])
    # Stopped by the sandbox's own limits (no host kill), within the wall limit plus slack.
    assert not result.died and result.error_type is not None, result
    assert seconds < LIMITS.wall_seconds + 3
    assert peak_procs <= LIMITS.processes + 3  # runner, init and bwrap/unshare on top
    # Each process may map 256 MiB; what the tree really held stays far below the host's RAM.
    assert peak_mb < LIMITS.memory_mb * 2, peak_mb
    host_is_clean()
    figure(f"sandbox {name}: stopped by / time / peak RSS / peak procs",
           f"{result.error_type} / {seconds:.2f} s / {peak_mb:.0f} MiB / {peak_procs}")
    record("sandbox", f"resource attack: {name}", 1, 1)
