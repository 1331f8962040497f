"""Attacks on the local sandbox's confinement, on every isolation backend this machine has:
keyrings, nested user namespaces, inode floods, the loopback interface, forged protocol answers,
capabilities. Each program runs as the python tool runs code (as root here, the sandbox drops to
a uid of its own); the host is checked after each.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import textwrap
import time

import pytest
from fault_ledger import record
from turnwise.tools import Executor, ToolCall, ToolContext, ToolRegistry
from turnwise.tools.python import LocalSandbox, SandboxLimits, python_tool
from turnwise.tools.python.isolation import probe
from turnwise.tools.python.local import _UIDS

KINDS = [pytest.param(kind, marks=pytest.mark.skipif(
    probe(kind, sys.executable) is not None, reason=f"{kind} sandbox unavailable here"))
    for kind in ("bwrap", "unshare")]
LIMITS = SandboxLimits(wall_seconds=5.0, cpu_seconds=5.0, memory_mb=256, processes=24,
                       file_mb=4, disk_mb=16, output_bytes=8192)
# keyctl(2) through libc: KEYCTL_READ = 11, special keyrings @s = -3, @u = -4.
KEYCTL = textwrap.dedent("""\
    import ctypes, os
    libc = ctypes.CDLL(None, use_errno=True)
    NR = {"x86_64": (250, 248), "aarch64": (219, 217)}[os.uname().machine]

    def keyctl(*args):
        r = libc.syscall(NR[0], *args)
        return r if r >= 0 else os.strerror(ctypes.get_errno())

    def add_key(description, payload, keyring):
        r = libc.syscall(NR[1], b"user", description, payload, len(payload), keyring)
        return r if r >= 0 else os.strerror(ctypes.get_errno())

    def read_key(serial):
        buf = ctypes.create_string_buffer(256)
        n = libc.syscall(NR[0], 11, serial, buf, 256)
        return buf.raw[:n].decode(errors="replace") if n >= 0 else os.strerror(ctypes.get_errno())
    """)


def run(kind: str, *cells: str, limits: SandboxLimits = LIMITS):
    """Results of `cells` run one after another in one sandbox session."""
    async def go():
        async with LocalSandbox(limits, isolation=kind) as box:
            return [await box.run(cell) for cell in cells]

    return asyncio.run(go())


def no_sandbox_left() -> None:
    assert len(_UIDS.free) == _UIDS.size  # every sandbox uid went back to the pool
    assert subprocess.run(["true"], check=False).returncode == 0


HOST_KEYRING = textwrap.dedent("""\
    # The host side of the keyring attack, in a process of its own: a session keyring holding a
    # secret (as a login session or a service has), then two sandboxes at once.
    import asyncio, ctypes, json, os, sys
    from turnwise.tools.python import LocalSandbox, SandboxLimits
    exec(sys.argv[3])  # KEYCTL helpers
    assert keyctl(1, b"turnwise-test-host") > 0  # KEYCTL_JOIN_SESSION_KEYRING
    secret = add_key(b"host-secret", b"s3cr3t", -3)
    attack, peek = sys.argv[2].replace("SERIAL", str(secret)).split("# ---\\n")

    async def go():
        limits = SandboxLimits(wall_seconds=5.0)
        async with LocalSandbox(limits, isolation=sys.argv[1]) as a, \\
                LocalSandbox(limits, isolation=sys.argv[1]) as b:
            first = await a.run(attack)  # b is alive meanwhile: a channel would reach it
            return first, await b.run(peek)

    first, second = asyncio.run(go())
    print(json.dumps([first.stdout, first.error, second.stdout, second.error]))
    """)


@pytest.mark.parametrize("kind", KINDS)
def test_keyrings_are_out_of_reach(kind):
    attack = KEYCTL + textwrap.dedent("""\
        print("own session keyring:", keyctl(0, -3, 0))
        print("host secret:", read_key(SERIAL))
        print("write session:", add_key(b"channel", b"hello", -3))
        print("write user:", add_key(b"channel", b"hello", -4))
        print("listed:", "host-secret" in open("/proc/keys").read())
        # ---
        """) + KEYCTL + textwrap.dedent("""\
        print("search:", keyctl(10, -3, b"user", b"channel", 0))
        print("host secret:", read_key(SERIAL))
        """)
    out = subprocess.run([sys.executable, "-c", HOST_KEYRING, kind, attack, KEYCTL],
                         capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 0, out.stderr[-2000:]
    first, first_error, second, second_error = json.loads(out.stdout)
    assert first_error is None and second_error is None, (first_error, second_error)
    assert first.splitlines() == [
        "own session keyring: Operation not permitted", "host secret: Operation not permitted",
        "write session: Operation not permitted", "write user: Operation not permitted",
        "listed: False"], first
    assert second.splitlines() == ["search: Operation not permitted",
                                   "host secret: Operation not permitted"], second
    record("sandbox", f"keyrings: host secret, write, list, channel ({kind})", 6, 6)


@pytest.mark.parametrize("kind", KINDS)
def test_no_nested_user_namespace(kind):
    code = textwrap.dedent("""\
        import ctypes, os, subprocess
        libc = ctypes.CDLL(None, use_errno=True)
        print("unshare(2):", libc.unshare(0x10000000), os.strerror(ctypes.get_errno()))
        out = subprocess.run(["unshare", "-r", "id", "-u"], capture_output=True, text=True)
        print("unshare -r:", out.stdout.strip() or out.stderr.strip())
        out = subprocess.run(["unshare", "-U", "--map-current-user", "true"], capture_output=True)
        print("unshare -U:", out.returncode)
        print("fork still works:", subprocess.run(["true"]).returncode)
        """)
    (result,) = run(kind, code)
    assert result.stdout.splitlines() == [
        "unshare(2): -1 Operation not permitted",
        "unshare -r: unshare: unshare failed: Operation not permitted",
        "unshare -U: 1", "fork still works: 0"], result
    no_sandbox_left()
    record("sandbox", f"nested user namespace, uid 0 inside it ({kind})", 3, 3)


@pytest.mark.parametrize("kind", KINDS)
def test_inode_flood_is_bounded_across_calls(kind):
    limits = SandboxLimits(wall_seconds=5.0, disk_files=1000, output_bytes=4096)
    flood = textwrap.dedent("""\
        import os
        made, tag = 0, os.urandom(4).hex()
        try:
            while made < 20000:
                open(f"/tmp/{tag}-{made}", "w").close()
                made += 1
        except OSError as e:
            print(made, e.errno)
        else:
            print(made, "no limit")
        """)
    first, second = run(kind, flood, flood, limits=limits)
    made, errno = first.stdout.split()
    assert 990 <= int(made) < 1000 and errno == "28", first  # ENOSPC: out of inodes
    assert second.stdout.split() == ["0", "28"], second  # the files of the first call remain
    no_sandbox_left()
    record("sandbox", f"inode flood, then again in the same session ({kind})", 2, 2)


@pytest.mark.parametrize("kind", KINDS)
def test_the_loopback_is_down_and_unusable(kind):
    code = textwrap.dedent("""\
        import fcntl, socket, struct, time
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            flags = struct.unpack("16sh22x", fcntl.ioctl(s, 0x8913, struct.pack("16sh22x", b"lo", 0)))[1]
        print("lo up:", bool(flags & 1))
        started = time.monotonic()
        try:
            server = socket.socket()
            server.bind(("127.0.0.1", 0))
            server.listen()
            target = server.getsockname()
        except OSError:
            target = ("127.0.0.1", 80)
        for host in (target, ("::1", 80), ("10.0.0.1", 80)):
            try:
                socket.create_connection(host, timeout=3)
                print("connected")
            except OSError as e:
                print(type(e).__name__)
        print("fast:", time.monotonic() - started < 1)
        """)
    (result,) = run(kind, code)
    assert result.stdout.splitlines() == ["lo up: False", "OSError", "OSError", "OSError",
                                          "fast: True"], result
    record("sandbox", f"connect through the loopback, to itself and out ({kind})", 3, 3)


@pytest.mark.parametrize("kind", KINDS)
def test_no_capability_is_left(kind):
    code = textwrap.dedent("""\
        import os
        caps = dict(line.split(":\\t") for line in open("/proc/self/status").read().splitlines()
                    if line.startswith("Cap"))
        print(sorted(k for k, v in caps.items() if int(v, 16)), os.getuid() != 0)
        print([l.split()[1] for l in open("/proc/self/status") if l.startswith("NoNewPrivs")])
        """)
    (result,) = run(kind, code)
    # CapBnd included; not uid 0 (but for unshare without root: uid 0 of a user namespace).
    not_root = os.geteuid() == 0 or kind == "bwrap"
    assert result.stdout.splitlines() == [f"[] {not_root}", "['1']"], result
    record("sandbox", f"capabilities left to the code, bounding set included ({kind})", 1, 1)


# Answers the sandboxed code writes to the runner's protocol pipe (the only pipe it can write).
FORGED = {
    "a list": ("[1]", "the answer is a list, not an object"),
    "missing keys": ('{"stdout": "x"}', "the answer has keys ['stdout']; expected"),
    "stdout a number": (
        ('{"stdout": 5, "stderr": "", "value": null, "error": null, "stdout_bytes": 0, '
         '"stderr_bytes": 0, "wall_seconds": 0.1, "cpu_seconds": 0.1}'),
        "the answer's 'stdout' is 5; expected a str"),
    "error a string": (
        ('{"stdout": "", "stderr": "", "value": null, "error": "boom", "stdout_bytes": 0, '
         '"stderr_bytes": 0, "wall_seconds": 0.1, "cpu_seconds": 0.1}'),
        "the answer's 'error' is 'boom'; expected null or {'type': str, 'message': str}"),
    "negative count": (
        ('{"stdout": "", "stderr": "", "value": null, "error": null, "stdout_bytes": -7, '
         '"stderr_bytes": 0, "wall_seconds": 0.1, "cpu_seconds": 0.1}'),
        "the answer's 'stdout_bytes' is -7; expected an int >= 0"),
    "not JSON": ("{{{", "Expecting property name"),
}


def forge(line: str) -> str:
    return textwrap.dedent(f"""\
        import os, stat
        for fd in range(3, 16):
            try:
                if stat.S_ISFIFO(os.fstat(fd).st_mode):
                    os.write(fd, {line!r}.encode() + b"\\n")
            except OSError:
                pass
        import time; time.sleep(1)
        """)


@pytest.mark.parametrize("name", list(FORGED))
@pytest.mark.parametrize("kind", KINDS)
def test_a_forged_answer_is_named_and_ends_the_sandbox(kind, name):
    line, message = FORGED[name]
    (result,) = run(kind, forge(line))
    assert result.died and result.error_type == "ProtocolError", result
    assert result.error.startswith("the sandbox answered an invalid result: ") and \
        message in result.error, result.error
    assert "The sandbox was stopped" in result.text(LIMITS)
    no_sandbox_left()
    record("sandbox", f"forged protocol answer: {name} ({kind})", 1, 1)


@pytest.mark.parametrize("kind", KINDS)
def test_a_forged_answer_reaches_the_model_as_an_error(kind):
    tool = python_tool(stateful=True, isolation=kind, limits={"wall_seconds": 5.0})
    ex = Executor(ToolRegistry([tool]))

    async def go():
        ctx = ToolContext()
        forged = await ex.call(ToolCall("python", {"code": forge(FORGED["error a string"][0])}),
                               ctx)
        after = await ex.call(ToolCall("python", {"code": "print('fresh')"}), ctx)
        await ctx.aclose()
        return forged, after

    started = time.perf_counter()
    forged, after = asyncio.run(go())
    assert forged.status == "error" and "the answer's 'error' is 'boom'" in forged.content
    assert "AttributeError" not in forged.content
    assert (after.status, after.content) == ("ok", "fresh")  # a new sandbox took its place
    assert time.perf_counter() - started < 30
    no_sandbox_left()
