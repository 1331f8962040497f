"""Limits of a sandbox and the result of running one code cell, shared by all backends."""

from __future__ import annotations

import signal
from dataclasses import dataclass, fields


@dataclass(frozen=True)
class SandboxLimits:
    """Per-call and per-session limits. Sizes in MiB, times in seconds."""

    wall_seconds: float = 10.0  # one call, wall clock
    cpu_seconds: float = 10.0  # one call, CPU time of the runner process
    # Memory of the whole sandbox (processes, /tmp files, shared memory) where a memory cgroup
    # is available (see `cgroup`); everywhere also the address space of each process.
    memory_mb: int = 1024
    processes: int = 64  # processes and threads of the sandbox user
    file_mb: int = 16  # largest file a process may write (outputs included)
    disk_mb: int = 64  # size of the private /tmp
    disk_files: int = 16384  # files and folders in the private /tmp (its inodes)
    open_files: int = 256
    output_bytes: int = 65536  # stdout (and stderr) kept per call
    session_cpu_seconds: float = 600.0  # CPU time of a whole stateful session
    startup_seconds: float = 30.0

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if not value > 0:
                raise ValueError(f"sandbox limits: {f.name}={value!r} must be > 0")
        if self.session_cpu_seconds < self.cpu_seconds:
            raise ValueError(f"sandbox limits: session_cpu_seconds={self.session_cpu_seconds} "
                             f"must be >= cpu_seconds={self.cpu_seconds}")

    @classmethod
    def from_options(cls, options: dict | None) -> SandboxLimits:
        """Limits from a recipe mapping; unknown keys are named."""
        from ..plugins import closest

        options = dict(options or {})
        allowed = {f.name for f in fields(cls)}
        unknown = sorted(set(options) - allowed)
        if unknown:
            raise ValueError(f"sandbox limits {unknown} are unknown; "
                             f"{closest(unknown, sorted(allowed))}allowed are {sorted(allowed)}")
        return cls(**options)


# What the runner answers for each cell (runner.py writes it): key -> (types, what is allowed).
ANSWER = {"stdout": ((str,), "a str"), "stderr": ((str,), "a str"),
          "value": ((str, type(None)), "a str or null"),
          "error": ((dict, type(None)), "null or {'type': str, 'message': str}"),
          "stdout_bytes": ((int,), "an int >= 0"), "stderr_bytes": ((int,), "an int >= 0"),
          "wall_seconds": ((int, float), "a number >= 0"),
          "cpu_seconds": ((int, float), "a number >= 0")}


@dataclass
class ExecResult:
    """What one cell did. `died` means the sandbox process ended (its state is gone)."""

    stdout: str = ""
    stderr: str = ""
    value: str | None = None  # repr of a trailing expression, notebook style
    error_type: str | None = None  # Timeout, CPULimit, MemoryError, SyntaxError, ValueError, ...
    error: str | None = None
    stdout_bytes: int = 0
    stderr_bytes: int = 0
    wall_seconds: float = 0.0
    cpu_seconds: float = 0.0
    died: bool = False
    exit_status: int | None = None

    @classmethod
    def from_answer(cls, data: object) -> ExecResult:
        """The result the runner reported; ValueError naming what is wrong with a forged one."""
        if not isinstance(data, dict):
            raise ValueError(f"the answer is a {type(data).__name__}, not an object")
        if set(data) != set(ANSWER):
            raise ValueError(f"the answer has keys {sorted(data)}; expected {sorted(ANSWER)}")
        for key, (types, allowed) in ANSWER.items():
            value = data[key]
            wrong = not isinstance(value, types) or isinstance(value, bool)
            if isinstance(value, (int, float)):
                wrong = wrong or not 0 <= value < float("inf")
            elif isinstance(value, dict):
                wrong = wrong or set(value) != {"type", "message"} or not all(
                    isinstance(v, str) for v in value.values())
            if wrong:
                raise ValueError(f"the answer's {key!r} is {value!r:.80}; expected {allowed}")
        error = data["error"] or {}
        return cls(stdout=data["stdout"], stderr=data["stderr"], value=data["value"],
                   error_type=error.get("type"), error=error.get("message"),
                   stdout_bytes=data["stdout_bytes"], stderr_bytes=data["stderr_bytes"],
                   wall_seconds=data["wall_seconds"], cpu_seconds=data["cpu_seconds"])

    @property
    def timed_out(self) -> bool:
        return self.error_type == "Timeout"

    def text(self, limits: SandboxLimits, *, session: bool = False) -> str:
        """The observation the model reads: output, value, and what went wrong, plainly."""
        parts = []
        if self.stdout:
            parts.append(self.stdout.rstrip("\n"))
        if self.stdout_bytes > len(self.stdout.encode()):
            parts.append(f"[stdout truncated: {self.stdout_bytes} bytes written, the first "
                         f"{len(self.stdout.encode())} shown]")
        if self.stderr:
            parts.append("[stderr]\n" + self.stderr.rstrip("\n"))
        if self.stderr_bytes > len(self.stderr.encode()):
            parts.append(f"[stderr truncated: {self.stderr_bytes} bytes written]")
        if self.value is not None:
            parts.append(self.value)
        if self.error_type == "Timeout":
            parts.append(f"TimeoutError: the code ran longer than {limits.wall_seconds:g} s "
                         "(wall-clock limit) and was stopped")
        elif self.error_type == "CPULimit":
            parts.append(f"CPULimitError: the code used more than {limits.cpu_seconds:g} s of CPU "
                         "time and was stopped")
        elif self.error:
            parts.append(self.error)
        if self.died:
            lost = "; variables from earlier calls are gone" if session else ""
            parts.append(f"The sandbox was stopped ({describe_exit(self.exit_status)}){lost}.")
        return "\n".join(parts) if parts else "(no output)"


def describe_exit(status: int | None) -> str:
    """A sandbox's exit status in words (128+N is death by signal N)."""
    if status is None:
        return "killed by the host after the time limit"
    if status > 128:
        try:
            name = signal.Signals(status - 128).name
        except ValueError:
            name = f"signal {status - 128}"
        hint = {"SIGKILL": " (a hard limit: memory, CPU time or the wall clock)",
                "SIGSEGV": " (often the memory limit)", "SIGXCPU": " (CPU-time limit)",
                "SIGXFSZ": " (file-size limit)"}.get(name, "")
        return f"{name}{hint}"
    return f"exit status {status}"
