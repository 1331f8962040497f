"""How much memory sandboxed code can hold, by the ways around a per-process limit: many
processes, SysV shared memory created and detached, memfd files, files in /tmp. Each attack
reports what it holds at its end; the host reads the sandbox cgroup's peak. With a memory cgroup
the whole sandbox stays within `memory_mb`; without one (the fallback, forced here) shared memory
and memfd are refused and each process is bounded by its address space.
"""

from __future__ import annotations

import asyncio
import sys
import textwrap

import pytest
from fault_ledger import figure, record
from turnwise.tools.python import LocalSandbox, SandboxLimits, cgroup
from turnwise.tools.python.isolation import probe

KINDS = [pytest.param(kind, marks=pytest.mark.skipif(
    probe(kind, sys.executable) is not None, reason=f"{kind} sandbox unavailable here"))
    for kind in ("bwrap", "unshare")]
HIERARCHY = cgroup.available()
needs_cgroup = pytest.mark.skipif(not isinstance(HIERARCHY, cgroup.Hierarchy),
                                  reason=f"no memory cgroup here: {HIERARCHY}")
LIMITS = SandboxLimits(wall_seconds=8.0, cpu_seconds=8.0, memory_mb=192, processes=16,
                       file_mb=32, disk_mb=512, output_bytes=4096)
CHUNK = 16  # MiB per step of every attack

# Each attack holds at most 2 * 192 MiB and prints "held N" (MiB) once it stops growing.
ATTACKS = {
    "6 processes": textwrap.dedent(f"""\
        import os, select, time
        chunk, children, reports = {CHUNK} << 20, [], []
        for _ in range(6):
            r, w = os.pipe()
            pid = os.fork()
            if pid == 0:
                blocks = []
                try:
                    while len(blocks) < 4:  # 64 MiB each, well inside one address space
                        blocks.append(b"x" * chunk)
                finally:
                    os.write(w, str(len(blocks) * {CHUNK}).encode().ljust(8))
                time.sleep(60)
            os.close(w)  # a child killed before it reports is then an end of file
            children.append((pid, r))
        held = 0
        for pid, r in children:
            if select.select([r], [], [], 5)[0]:
                data = os.read(r, 8)
                time.sleep(0.2)
                if data and os.waitpid(pid, os.WNOHANG) == (0, 0):  # alive, still holding
                    held += int(data)
        print("held", held)
        """),
    "SysV shared memory": textwrap.dedent(f"""\
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        libc.shmat.restype = ctypes.c_void_p
        held = 0
        while held < 2 * 192:
            seg = libc.shmget(0, {CHUNK} << 20, 0o1600)  # IPC_PRIVATE, IPC_CREAT | 0600
            if seg < 0:
                print("shmget", ctypes.get_errno())
                break
            addr = libc.shmat(seg, None, 0)
            ctypes.memset(addr, 1, {CHUNK} << 20)
            libc.shmdt(ctypes.c_void_p(addr))  # detached: no process maps it any more
            held += {CHUNK}
        print("held", held)
        """),
    "memfd": textwrap.dedent(f"""\
        import os
        fds, held = [], 0
        try:
            while held < 2 * 192:
                fd = os.memfd_create("hold")
                fds.append(fd)
                os.write(fd, b"m" * ({CHUNK} << 20))
                held += {CHUNK}
        except OSError as e:
            print("memfd", e.errno)
        print("held", held)
        """),
    "files in /tmp": textwrap.dedent(f"""\
        held = 0
        try:
            while held < 2 * 192:
                with open(f"/tmp/hold{{held}}", "wb") as f:
                    f.write(b"t" * ({CHUNK} << 20))
                held += {CHUNK}
        except OSError as e:
            print("file", e.errno)
        print("held", held)
        """),
}


def attack(kind: str, code: str):
    async def go():
        async with LocalSandbox(LIMITS, isolation=kind) as box:
            result = await box.run(code)
            return result, box.memory_peak_mb

    return asyncio.run(go())


def held(result) -> int:
    """MiB the attack reported holding at its end; 0 if the sandbox was stopped before."""
    lines = [line for line in result.stdout.splitlines() if line.startswith("held ")]
    return int(lines[-1].split()[1]) if lines else 0


@needs_cgroup
@pytest.mark.parametrize("name", list(ATTACKS))
@pytest.mark.parametrize("kind", KINDS)
def test_the_cgroup_bounds_the_whole_sandbox(kind, name):
    result, peak = attack(kind, ATTACKS[name])
    # The kernel stopped it: an OOM kill inside (the sandbox may die of it) or a failed write.
    assert held(result) < LIMITS.memory_mb, result
    assert peak is not None and peak <= LIMITS.memory_mb, peak
    if result.died:
        assert result.error_type == "MemoryError" and "192 MiB" in result.error, result
    figure(f"sandbox {name} ({kind}, cgroup v{HIERARCHY.version}): held / peak / limit",
           f"{held(result)} / {peak:.0f} / {LIMITS.memory_mb} MiB")
    record("sandbox", f"memory past the limit: {name} ({kind})", 1, 1)


@pytest.mark.slow
@pytest.mark.parametrize("kind", KINDS)
def test_without_a_cgroup_shared_memory_is_refused(kind, monkeypatch):
    monkeypatch.setattr(cgroup, "available", lambda: "disabled for this test")
    shm, _ = attack(kind, ATTACKS["SysV shared memory"])
    memfd, _ = attack(kind, ATTACKS["memfd"])
    assert shm.stdout.splitlines() == ["shmget 1", "held 0"], shm  # EPERM
    assert memfd.stdout.splitlines() == ["memfd 1", "held 0"], memfd
    # Processes are bounded one by one: 6 x 64 MiB fit (the stated bound is processes x
    # memory_mb), a single process cannot pass its address space.
    many, _ = attack(kind, ATTACKS["6 processes"])
    one, _ = attack(kind, "x = []\nwhile True:\n    x.append(b'x' * (16 << 20))")
    assert held(many) == 6 * 64 and one.error_type == "MemoryError", (many, one)
    figure(f"sandbox without cgroup ({kind}): 6 processes held", f"{held(many)} MiB "
           f"(bound {LIMITS.processes} x {LIMITS.memory_mb} MiB + {LIMITS.disk_mb} MiB /tmp)")
    record("sandbox", f"no cgroup: SysV shm, memfd refused ({kind})", 2, 2)
