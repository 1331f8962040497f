"""The local sandbox: a separate, isolated process per session that runs Python cells.

One `LocalSandbox` is one process tree under bwrap or unshare (see `isolation`), in a memory
cgroup of its own where the host allows one (see `cgroup`). A stateless call starts one, runs a
cell and closes it; a stateful session keeps it between calls. The host enforces a hard
wall-clock limit on top of the runner's own limits: if a cell overruns it by `GRACE` seconds,
the whole process tree is killed.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import sys
import threading
import time
from pathlib import Path

from . import cgroup
from .isolation import command, resolve
from .result import ExecResult, SandboxLimits

GRACE = 2.0  # seconds the host waits past a cell's wall limit before killing the sandbox
_RUNNER = Path(__file__).with_name("runner.py")


class SandboxError(RuntimeError):
    """The sandbox could not be started or talked to."""


class _UidPool:
    """Distinct unprivileged uids for concurrent sandboxes, so that the per-user process limit
    counts each sandbox alone; the range depends on the host pid so that two test runs on one
    machine do not share uids."""

    def __init__(self, size: int = 256) -> None:
        self.base = 10_000_000 + (os.getpid() % 100_000) * size
        self.size = size
        self.free = list(range(size))
        self.lock = threading.Lock()

    def acquire(self) -> int:
        with self.lock:
            if not self.free:
                raise SandboxError(f"more than {self.size} local sandboxes at once in one process")
            return self.base + self.free.pop(0)

    def release(self, uid: int) -> None:
        with self.lock:
            self.free.append(uid - self.base)


_UIDS = _UidPool()


class LocalSandbox:
    """A sandboxed Python process: `async with LocalSandbox() as box: await box.run(code)`."""

    def __init__(self, limits: SandboxLimits | None = None, *, isolation: str = "auto",
                 python: str | None = None, ro_paths: tuple[str, ...] = ()) -> None:
        self.limits = limits or SandboxLimits()
        self.requested = isolation
        self.python = python or sys.executable
        self.ro_paths = tuple(ro_paths)
        self.isolation: str | None = None
        self.proc: asyncio.subprocess.Process | None = None
        self._uid: int | None = None
        self._folder: str | None = None
        self._cgroup: cgroup.MemoryCgroup | None = None
        self._lock = asyncio.Lock()

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    @property
    def memory_peak_mb(self) -> float | None:
        """The most memory the running sandbox held at once; None without a memory cgroup."""
        return None if self._cgroup is None else self._cgroup.peak_bytes() / 2**20

    async def start(self) -> None:
        """Start the sandbox process and wait until its runner is ready."""
        if self.alive:
            return
        self._release()  # a previous process of this sandbox died: its uid and folder are free
        self.isolation = await asyncio.to_thread(resolve, self.requested, self.python)
        self._uid = _UIDS.acquire() if os.geteuid() == 0 else None
        limits = self.limits
        config = {"memory_mb": limits.memory_mb, "file_mb": limits.file_mb,
                  "processes": limits.processes, "open_files": limits.open_files,
                  "session_cpu_seconds": limits.session_cpu_seconds, "own_pid_namespace": True}
        hierarchy = cgroup.available()
        if isinstance(hierarchy, cgroup.Hierarchy):
            self._cgroup = cgroup.MemoryCgroup.create(hierarchy, limits.memory_mb * 2**20)
        cmd, self._folder = command(
            self.isolation, python=self.python, uid=self._uid, disk_mb=limits.disk_mb,
            disk_files=limits.disk_files, deny_shared_memory=self._cgroup is None,
            program=["-I", "-c", _RUNNER.read_text(), json.dumps(config)], extra_ro=self.ro_paths)
        if self._cgroup is not None:
            cmd = self._cgroup.wrap(cmd)
        # JSON may escape each output byte as \uXXXX: room for that, both streams, and slack.
        reader_limit = 12 * limits.output_bytes * 2 + (1 << 20)
        self.proc = await asyncio.create_subprocess_exec(
            *cmd, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE, start_new_session=True, limit=reader_limit)
        try:
            line = await asyncio.wait_for(self.proc.stdout.readline(), limits.startup_seconds)
        except asyncio.TimeoutError:
            line = b""
        if not line.startswith(b'{"ready": true'):
            err = await self._stderr()
            await self.close()
            raise SandboxError(f"the {self.isolation} sandbox did not start: {err or 'no output'}")

    async def run(self, code: str, *, wall_seconds: float | None = None,
                  cpu_seconds: float | None = None) -> ExecResult:
        """Run one cell; a limit that is hit is reported in the result, never raised."""
        async with self._lock:  # one cell at a time per sandbox
            if not self.alive:
                await self.start()
            wall = wall_seconds or self.limits.wall_seconds
            request = {"code": code, "wall": wall, "cpu": cpu_seconds or self.limits.cpu_seconds,
                       "output_bytes": self.limits.output_bytes}
            started = time.perf_counter()
            try:
                self.proc.stdin.write((json.dumps(request) + "\n").encode())
                await self.proc.stdin.drain()
                line = await asyncio.wait_for(self.proc.stdout.readline(), wall + GRACE)
            except asyncio.TimeoutError:
                await self._kill()
                return ExecResult(error_type="Timeout", died=True,
                                  wall_seconds=time.perf_counter() - started)
            except (ConnectionError, ValueError, asyncio.LimitOverrunError):
                line = b""  # the runner died, or flooded the protocol pipe
            except BaseException:  # cancelled by the executor's timeout: leave nothing behind
                await self._kill()
                raise
            if not line:
                await self._kill()
                # Killed by SIGKILL (its init reports 128 + 9) after the kernel's OOM killer ran.
                oom = (self.proc.returncode in (-signal.SIGKILL, 128 + signal.SIGKILL)
                       and self._cgroup is not None and self._cgroup.oom_kills() > 0)
                error = (f"MemoryError: the sandbox held more than its {self.limits.memory_mb} MiB "
                         "of memory and was stopped") if oom else await self._stderr() or None
                return ExecResult(died=True, exit_status=self.proc.returncode,
                                  error_type="MemoryError" if oom else None, error=error,
                                  wall_seconds=time.perf_counter() - started)
            try:
                return ExecResult.from_answer(json.loads(line))
            except ValueError as exc:  # JSON garbage, or an answer forged by the code
                await self._kill()
                return ExecResult(died=True, error_type="ProtocolError",
                                  error=f"the sandbox answered an invalid result: {exc}",
                                  wall_seconds=time.perf_counter() - started)

    async def close(self) -> None:
        """End the sandbox: every process in it dies, its /tmp is gone."""
        if self.proc is not None and self.proc.returncode is None:
            try:
                self.proc.stdin.close()
                await asyncio.wait_for(self.proc.wait(), 1.0)
            except (asyncio.TimeoutError, ConnectionError, OSError):
                pass
        await self._kill()
        self._release()

    async def __aenter__(self) -> LocalSandbox:
        await self.start()
        return self

    async def __aexit__(self, *exc_info) -> None:
        await self.close()

    def _release(self) -> None:
        if self._cgroup is not None:
            self._cgroup.kill()
            self._cgroup.remove()
            self._cgroup = None
        if self._uid is not None:
            _UIDS.release(self._uid)
            self._uid = None
        if self._folder is not None:
            shutil.rmtree(self._folder, ignore_errors=True)
            self._folder = None

    async def _kill(self) -> None:
        proc = self.proc
        if proc is None:
            return
        if proc.returncode is None:
            try:  # the outer bwrap/unshare leads the group; the namespaces die with it
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            await proc.wait()
        # The namespace's processes die asynchronously after its init; with a cgroup or a uid
        # of our own we can make sure, before either is reused, that none is left.
        deadline = time.monotonic() + 2.0
        while (left := self._leftover()) and time.monotonic() < deadline:
            for pid in left:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            await asyncio.sleep(0.002)

    def _leftover(self) -> list[int]:
        """Live host pids of this sandbox, as far as its cgroup and uid tell."""
        pids = set(self._cgroup.pids()) if self._cgroup is not None else set()
        if self._uid is not None:
            pids.update(_processes_of(self._uid))
        return sorted(pids)

    async def _stderr(self) -> str:
        if self.proc is None or self.proc.stderr is None:
            return ""
        try:
            data = await asyncio.wait_for(self.proc.stderr.read(4096), 1.0)
        except (asyncio.TimeoutError, ValueError):
            return ""
        return data.decode("utf-8", "replace").strip()


def _processes_of(uid: int) -> list[int]:
    """Live host pids whose real uid is `uid` (zombies are already dead; skipped)."""
    pids = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/status") as f:
                fields = dict(line.split(":", 1) for line in f if ":" in line)
            if int(fields["Uid"].split()[0]) == uid and not fields["State"].strip().startswith("Z"):
                pids.append(int(entry.name))
        except (OSError, ValueError, KeyError):
            continue
    return pids
