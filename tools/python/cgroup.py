"""A memory cgroup per sandbox: one bound on everything the sandbox holds in memory.

The kernel charges a cgroup for its processes' pages, their tmpfs files (the private /tmp), SysV
shared memory, memfd files and kernel memory (inodes, page tables), so `memory_mb` bounds all of
them together, however many processes share the work. A sandbox's cgroup is a child of this
process's own memory cgroup: under cgroup v1 when the memory controller's folder is writable,
under cgroup v2 when this process's cgroup is writable and delegates the memory controller to
its children. Elsewhere `available()` says why not, and the sandbox falls back to per-process
limits (see `isolation`).
"""

from __future__ import annotations

import functools
import itertools
import os
import signal
from dataclasses import dataclass
from pathlib import Path

PREFIX = "turnwise-sandbox-"
_COUNTER = itertools.count()
_PENDING: list[MemoryCgroup] = []  # cgroups whose last processes were still exiting


@dataclass(frozen=True)
class Hierarchy:
    """Where sandbox cgroups go: the memory hierarchy's version and this process's folder in it."""

    version: int
    folder: Path

    @property
    def limit_file(self) -> str:
        return "memory.max" if self.version == 2 else "memory.limit_in_bytes"


def own_cgroups(proc_cgroup: str, mountinfo: str) -> list[Hierarchy]:
    """The folders of this process's memory cgroups, v1 first, from /proc/self/{cgroup,mountinfo}."""
    paths = {}  # "memory" (v1) or "" (v2) -> the cgroup path of this process
    for line in proc_cgroup.splitlines():
        number, controllers, path = line.split(":", 2)
        if number == "0" and controllers == "":
            paths[""] = path
        elif "memory" in controllers.split(","):
            paths["memory"] = path
    found = []
    for line in mountinfo.splitlines():
        fields = line.split()
        dash = fields.index("-")
        root, mount_point, fstype, options = fields[3], fields[4], fields[dash + 1], fields[-1]
        key = {"cgroup": "memory", "cgroup2": ""}.get(fstype)
        if key is None or key not in paths or (key and "memory" not in options.split(",")):
            continue
        path = paths[key]
        if root != "/" and (path == root or path.startswith(root + "/")):
            path = path[len(root):]  # the mount shows a subtree (a cgroup namespace)
        found.append(Hierarchy(1 if key else 2, Path(mount_point + path.rstrip("/"))))
    return sorted(found, key=lambda h: h.version)


def _usable(hierarchy: Hierarchy) -> str | None:
    """None if sandbox cgroups can be made under `hierarchy`, else why not."""
    folder = hierarchy.folder
    if not os.access(folder, os.W_OK):
        return f"{folder} is not writable"
    if hierarchy.version == 2:
        delegated = (folder / "cgroup.subtree_control").read_text().split()
        if "memory" not in delegated:
            return f"{folder}/cgroup.subtree_control does not delegate the memory controller"
    return None


@functools.cache
def available() -> Hierarchy | str:
    """The hierarchy sandbox cgroups go under, or the reason there is none (checked once)."""
    try:
        hierarchies = own_cgroups(Path("/proc/self/cgroup").read_text(),
                                  Path("/proc/self/mountinfo").read_text())
    except OSError as exc:
        return f"cannot read this process's cgroups: {exc}"
    reasons = []
    for hierarchy in hierarchies:
        try:
            reason = _usable(hierarchy) or _try(hierarchy)
        except OSError as exc:
            reason = f"{hierarchy.folder}: {exc}"
        if reason is None:
            return hierarchy
        reasons.append(f"cgroup v{hierarchy.version}: {reason}")
    return "; ".join(reasons) or "no memory cgroup controller is mounted"


def _try(hierarchy: Hierarchy) -> str | None:
    """Make, limit and remove one cgroup: None if that works (stale ones are cleared first)."""
    _remove_stale(hierarchy.folder)
    if not MemoryCgroup.create(hierarchy, 64 << 20).remove():
        return "a fresh cgroup could not be removed"
    return None


def _remove_stale(folder: Path) -> None:
    """Remove empty sandbox cgroups left by processes that were killed before cleaning up."""
    for child in folder.glob(PREFIX + "*"):
        owner = child.name[len(PREFIX):].split("-")[0]
        if owner.isdigit() and not Path(f"/proc/{owner}").exists():
            try:
                child.rmdir()
            except OSError:
                pass  # still holds processes: not ours to kill


class MemoryCgroup:
    """One sandbox's cgroup: its memory limit, its processes, its peak and its OOM kills."""

    def __init__(self, hierarchy: Hierarchy, folder: Path) -> None:
        self.hierarchy = hierarchy
        self.folder = folder

    @classmethod
    def create(cls, hierarchy: Hierarchy, limit_bytes: int) -> MemoryCgroup:
        """A new cgroup whose processes together may hold at most `limit_bytes`, swap included."""
        for left in list(_PENDING):
            if left.remove():
                _PENDING.remove(left)
        folder = hierarchy.folder / f"{PREFIX}{os.getpid()}-{next(_COUNTER)}"
        folder.mkdir()
        box = cls(hierarchy, folder)
        try:
            if hierarchy.version == 2:
                box._write("memory.max", limit_bytes)
                box._write("memory.swap.max", 0, optional=True)
                box._write("memory.oom.group", 1)  # an OOM kill ends the whole sandbox
            else:
                box._write("memory.limit_in_bytes", limit_bytes)
                box._write("memory.memsw.limit_in_bytes", limit_bytes, optional=True)
        except OSError:
            box.remove()
            raise
        return box

    def wrap(self, cmd: list[str]) -> list[str]:
        """`cmd` started inside this cgroup, so every process it makes is counted from birth."""
        return ["/bin/sh", "-c", 'echo $$ > "$0" && exec "$@"', str(self.folder / "cgroup.procs"),
                *cmd]

    def pids(self) -> list[int]:
        """Host pids of the processes in this cgroup."""
        try:
            return [int(p) for p in (self.folder / "cgroup.procs").read_text().split()]
        except OSError:
            return []

    def peak_bytes(self) -> int:
        """The most memory the sandbox held at once."""
        name = "memory.peak" if self.hierarchy.version == 2 else "memory.max_usage_in_bytes"
        try:
            return int((self.folder / name).read_text())
        except (OSError, ValueError):
            return 0

    def oom_kills(self) -> int:
        """How many of the sandbox's processes the kernel killed for exceeding the limit."""
        name = "memory.events" if self.hierarchy.version == 2 else "memory.oom_control"
        try:
            for line in (self.folder / name).read_text().splitlines():
                key, _, value = line.partition(" ")
                if key == "oom_kill":
                    return int(value)
        except (OSError, ValueError):
            pass
        return 0

    def kill(self) -> None:
        """SIGKILL every process in the cgroup."""
        for pid in self.pids():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def remove(self) -> bool:
        """Remove the cgroup (its remaining charges move to the parent). While it still holds
        processes (exiting after a kill) it stays, and the next `create` tries again."""
        try:
            self.folder.rmdir()
        except FileNotFoundError:
            pass
        except OSError:
            if self not in _PENDING:
                _PENDING.append(self)
            return False
        return True

    def _write(self, name: str, value: int, *, optional: bool = False) -> None:
        path = self.folder / name
        if optional and not path.exists():
            return
        path.write_text(str(value))
