"""The E2B backend: code runs in an E2B cloud sandbox through `e2b-code-interpreter`'s AsyncSandbox.

Configuration is E2B's own: `E2B_API_KEY`, `E2B_DOMAIN`, and for self-hosted or test servers
`E2B_API_URL` / `E2B_SANDBOX_URL` (or the same as options). Only the wall-clock limit and the
output size are ours to set per call; memory, CPU and processes are the template's business.
"""

from __future__ import annotations

import time
from typing import Any

from ..base import ToolError, TransientToolError
from ..plugins import closest
from .result import ExecResult, SandboxLimits

# The SandboxLimits fields this backend honours; setting any other is an error, not a no-op.
E2B_LIMITS = ("wall_seconds", "output_bytes", "startup_seconds")


class E2BSandbox:
    """One E2B sandbox (created on first use, killed on close), the same interface as LocalSandbox.

    Args:
        template: the E2B template (default: the code interpreter's).
        lifetime_seconds: how long E2B keeps the sandbox alive without a call.
        api_key, domain, api_url, sandbox_url, request_timeout: passed to the E2B client;
            unset ones come from the E2B_* environment variables.
    """

    def __init__(self, limits: SandboxLimits | None = None, *, template: str | None = None,
                 lifetime_seconds: int = 600, **connection: Any) -> None:
        allowed = {"api_key", "domain", "api_url", "sandbox_url", "request_timeout"}
        unknown = sorted(set(connection) - allowed)
        if unknown:
            every = sorted(allowed | {"template", "lifetime_seconds"})
            raise ValueError(f"e2b options {unknown} are unknown; {closest(unknown, every)}"
                             f"allowed are {every}")
        self.limits = limits or SandboxLimits()
        self.template = template
        self.lifetime_seconds = lifetime_seconds
        self.connection = connection
        self.sandbox: Any = None

    async def start(self) -> None:
        """Create the remote sandbox."""
        if self.sandbox is not None:
            return
        from e2b import AuthenticationException, RateLimitException, SandboxException
        from e2b_code_interpreter import AsyncSandbox

        options = {"request_timeout": self.limits.startup_seconds, **self.connection}
        try:
            self.sandbox = await AsyncSandbox.create(template=self.template,
                                                     timeout=self.lifetime_seconds, **options)
        except RateLimitException as exc:
            raise TransientToolError(f"E2B rate limit: {exc}") from None
        except AuthenticationException as exc:
            raise ToolError(f"E2B refused the API key: {exc}") from None
        except SandboxException as exc:
            raise TransientToolError(f"E2B could not create a sandbox: {exc}") from None

    async def run(self, code: str) -> ExecResult:
        """Run one cell in the sandbox's default Python context."""
        from e2b import SandboxException, TimeoutException

        await self.start()
        started = time.perf_counter()
        try:
            execution = await self.sandbox.run_code(code, timeout=self.limits.wall_seconds)
        except TimeoutException as exc:
            seconds = time.perf_counter() - started
            if str(exc).startswith("Execution timed out"):
                return ExecResult(error_type="Timeout", wall_seconds=seconds)
            return ExecResult(died=True, error=f"E2B: {exc}", wall_seconds=seconds)
        except SandboxException as exc:
            return ExecResult(died=True, error=f"E2B: {exc}",
                              wall_seconds=time.perf_counter() - started)
        return self._result(execution, time.perf_counter() - started)

    async def close(self) -> None:
        """Kill the remote sandbox (failures are ignored: E2B's lifetime ends it anyway)."""
        sandbox, self.sandbox = self.sandbox, None
        if sandbox is not None:
            try:
                await sandbox.kill()
            except Exception:  # noqa: BLE001 - best effort; the sandbox expires on its own
                pass

    def _result(self, execution: Any, seconds: float) -> ExecResult:
        cap = self.limits.output_bytes
        stdout = "".join(execution.logs.stdout)
        stderr = "".join(execution.logs.stderr)
        main = next((r for r in execution.results if getattr(r, "is_main_result", False)), None)
        error = execution.error
        return ExecResult(
            stdout=_cut(stdout, cap), stderr=_cut(stderr, cap),
            stdout_bytes=len(stdout.encode()), stderr_bytes=len(stderr.encode()),
            value=main.text if main is not None else None,
            error_type=error.name if error else None,
            error=(error.traceback or f"{error.name}: {error.value}") if error else None,
            wall_seconds=seconds)


def _cut(text: str, cap: int) -> str:
    data = text.encode()
    return text if len(data) <= cap else data[:cap].decode("utf-8", "ignore")
