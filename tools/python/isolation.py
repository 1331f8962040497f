"""How the local sandbox is isolated: the command line that starts it under bwrap or unshare.

Both backends give the same picture from inside: fresh pid, network, ipc and uts namespaces
(no network interface but a down loopback); a root filesystem holding only the system paths
(read-only, nosuid, nodev), the Python installation and, at /opt/venv, the packages of the
virtual environment it runs in (not at their host path, which may be in a home folder); a fresh
/proc; a minimal /dev; a private tmpfs at /tmp (the working directory) bounded in size and in
files; and, from `confine`, no capabilities, an unprivileged uid when run as root, and a seccomp
filter.

- `bwrap` (bubblewrap), when installed: as root it runs without a user namespace and keeps only
  the capabilities `confine` needs; as a normal user it maps the user into a user namespace.
- `unshare` (util-linux): a small init (`unshare_init.py`) builds the same filesystem with
  mount(2) and chroot, then runs `confine`.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

KINDS = ("bwrap", "unshare")
SYSTEM_PATHS = ("/usr", "/bin", "/lib", "/lib32", "/lib64", "/sbin", "/etc/ld.so.cache",
                "/etc/alternatives", "/etc/localtime")
VENV = "/opt/venv"  # where the virtual environment's packages appear inside
DEVICES = ("null", "zero", "full", "random", "urandom")  # all of /dev, with fd and std* links
DEV_LINKS = (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"), ("stdout", "/proc/self/fd/1"),
             ("stderr", "/proc/self/fd/2"))
# /proc files covered by an empty file: the keys a user may view (its own, when not run as root).
HIDDEN = ("/proc/keys", "/proc/key-users")
ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": "/tmp", "TMPDIR": "/tmp",
       "LANG": "C.UTF-8", "USER": "sandbox", "LOGNAME": "sandbox", "MPLCONFIGDIR": "/tmp",
       "PYTHONDONTWRITEBYTECODE": "1",
       # One thread per numeric library: threads count against the process limit.
       "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
# What `confine` needs to set the sandbox up and drop to its uid; it then drops them all.
CAPS = ("CAP_SETUID", "CAP_SETGID", "CAP_SETPCAP", "CAP_SYS_ADMIN", "CAP_NET_ADMIN")
_INIT = Path(__file__).with_name("unshare_init.py")
_CONFINE = Path(__file__).with_name("confine.py")
_PREFIXES = "import sys, json; print(json.dumps([sys.prefix, sys.base_prefix, sys.base_exec_prefix]))"


class SandboxUnavailable(RuntimeError):
    """No isolation backend works on this machine."""


@dataclass(frozen=True)
class Interpreter:
    """Where a Python interpreter's files are on the host."""

    binary: str  # the real binary
    install: tuple[str, ...]  # folders of its base installation, seen inside at their host path
    venv: str | None = None  # the virtual environment it runs in, seen inside at VENV
    venv_config: dict[str, str] = field(default_factory=dict)  # that environment's pyvenv.cfg


@functools.cache
def interpreter(python: str) -> Interpreter:
    """The host folders `python` runs from (asked of `python` itself unless it is this one)."""
    if os.path.abspath(python) == sys.executable:
        prefix, base, base_exec = sys.prefix, sys.base_prefix, sys.base_exec_prefix
    else:
        try:
            out = subprocess.run([python, "-I", "-c", _PREFIXES], capture_output=True, text=True,
                                 timeout=60, check=True)
        except (OSError, subprocess.SubprocessError) as exc:
            raise SandboxUnavailable(f"the interpreter {python!r} does not run: {exc}") from None
        prefix, base, base_exec = json.loads(out.stdout)
    binary = os.path.realpath(python)
    install = tuple(sorted({base, base_exec, str(Path(binary).parent.parent)}))
    if prefix == base:
        return Interpreter(binary, install)
    config = {}
    cfg = Path(prefix, "pyvenv.cfg")
    for line in cfg.read_text().splitlines() if cfg.exists() else ():
        key, sep, value = line.partition("=")
        if sep:
            config[key.strip()] = value.strip()
    return Interpreter(binary, install, prefix, config)


def layout(extra_ro: tuple[str, ...], python: Interpreter) -> tuple[list[str], list[tuple[str, str]]]:
    """(paths bound read-only at their host path, (target, link) symlinks); host links such as
    /bin -> usr/bin stay links."""
    ro, links = [], []
    for path in (*SYSTEM_PATHS, *python.install, *extra_ro):
        if not os.path.lexists(path):
            continue
        if os.path.islink(path) and os.path.dirname(path) == "/":
            links.append((os.readlink(path), path))
        else:
            ro.append(os.path.abspath(path))
    ro = sorted(set(ro))
    # A path inside another one is already there (and could not be mounted on a read-only parent).
    kept = [p for p in ro if not any(p != q and p.startswith(q.rstrip("/") + "/") for q in ro)]
    return kept, sorted(set(links))


def venv_binds(python: Interpreter, folder: str) -> list[tuple[str, str]]:
    """(host path, path inside) binds that make VENV a virtual environment of the installation:
    a pyvenv.cfg and bin/python written under `folder`, and the host environment's packages."""
    skeleton = Path(folder, "venv")
    (skeleton / "bin").mkdir(parents=True)
    (skeleton / "lib").mkdir()
    (skeleton / "bin" / "python").symlink_to(python.binary)
    config = {"home": str(Path(python.binary).parent)}
    for key in ("include-system-site-packages", "version"):
        if key in python.venv_config:
            config[key] = python.venv_config[key]
    (skeleton / "pyvenv.cfg").write_text("".join(f"{k} = {v}\n" for k, v in config.items()))
    binds = [(str(skeleton), VENV), (os.path.join(python.venv, "lib"), f"{VENV}/lib")]
    lib64 = os.path.join(python.venv, "lib64")
    if os.path.islink(lib64):
        (skeleton / "lib64").symlink_to("lib")
    elif os.path.isdir(lib64):
        (skeleton / "lib64").mkdir()
        binds.append((lib64, f"{VENV}/lib64"))
    return binds


def command(kind: str, *, python: str, program: list[str], uid: int | None, disk_mb: int,
            disk_files: int, deny_shared_memory: bool,
            extra_ro: tuple[str, ...] = ()) -> tuple[list[str], str]:
    """(command line, folder to remove afterwards) that runs `python -I -c code *args` (the
    `program`) in a sandbox.

    `deny_shared_memory`: refuse SysV shared memory and memfd files (when no memory cgroup
    counts them); `uid`: the sandbox user when run as root, else None."""
    if kind not in KINDS:
        raise ValueError(f"sandbox isolation={kind!r}: allowed are 'auto', 'bwrap', 'unshare'")
    found = interpreter(python)
    ro, links = layout(extra_ro, found)
    binds = [(path, path) for path in ro]
    folder = tempfile.mkdtemp(prefix="turnwise-sandbox-")
    os.chmod(folder, 0o755)
    empty = os.path.join(folder, "empty")
    open(empty, "w").close()
    inside = found.binary
    if found.venv is not None:
        binds += venv_binds(found, folder)
        inside = f"{VENV}/bin/python"
    if program[:2] != ["-I", "-c"] or len(program) < 3:
        raise ValueError(f"sandbox program {program[:2]}: expected ['-I', '-c', code, *args]")
    confine = {"tmp_files": disk_files, "uid": uid, "deny_shared_memory": deny_shared_memory,
               "code": program[2], "argv": program[3:]}
    argv = [inside, "-I", "-S", "-c", _CONFINE.read_text(), json.dumps(confine)]
    if kind == "bwrap":
        return _bwrap(binds, links, disk_mb, uid, argv, empty), folder
    return _unshare(binds, links, disk_mb, python, argv, folder, empty), folder


def _hidden() -> list[str]:
    return [path for path in HIDDEN if os.path.exists(path)]


def _unshare(binds: list[tuple[str, str]], links: list[tuple[str, str]], disk_mb: int,
             python: str, argv: list[str], folder: str, empty: str) -> list[str]:
    root = os.path.join(folder, "root")
    os.mkdir(root, 0o755)
    config = {"root": root, "binds": binds, "symlinks": links, "devices": DEVICES,
              "dev_links": DEV_LINKS, "hidden": _hidden(), "empty": empty, "disk_mb": disk_mb,
              "argv": argv, "env": ENV}
    cmd = ["unshare", "--mount", "--net", "--pid", "--ipc", "--uts", "--fork", "--kill-child"]
    if os.geteuid() != 0:
        cmd += ["--user", "--map-root-user"]
    return cmd + [python, "-I", "-c", _INIT.read_text(), json.dumps(config)]


def _bwrap(binds: list[tuple[str, str]], links: list[tuple[str, str]], disk_mb: int,
           uid: int | None, argv: list[str], empty: str) -> list[str]:
    cmd = ["bwrap", "--die-with-parent", "--new-session", "--unshare-pid", "--unshare-net",
           "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try", "--hostname", "sandbox"]
    if uid is None:  # unprivileged: a user namespace holds the mounts (confine forbids more)
        cmd += ["--unshare-user"]
    # The private /tmp first: an interpreter installed under /tmp (in a CI checkout there) is
    # then bound on top of it instead of being hidden by it.
    cmd += ["--perms", "1777", "--size", str(disk_mb * 1024 * 1024), "--tmpfs", "/tmp"]
    # bwrap creates missing parents of a mount point with mode 0700 (as root); the sandbox
    # user must be able to walk through them to the Python installation.
    parents = sorted({str(p) for _, inside in binds for p in Path(inside).parents
                      if str(p) not in ("/", "/tmp")})
    for parent in parents:
        cmd += ["--perms", "0755", "--dir", parent]
    for host, inside in binds:
        cmd += ["--ro-bind", host, inside]
    for target, link in links:
        cmd += ["--symlink", target, link]
    # A minimal /dev of our own rather than bwrap's --dev (which adds ptys, and under a user
    # namespace leaves /tmp impossible to remount); then the root itself goes read-only.
    cmd += ["--proc", "/proc"]
    for path in _hidden():
        cmd += ["--ro-bind", empty, path]
    cmd += ["--dir", "/dev"]
    for device in DEVICES:
        cmd += ["--dev-bind", f"/dev/{device}", f"/dev/{device}"]
    for name, target in DEV_LINKS:
        cmd += ["--symlink", target, f"/dev/{name}"]
    cmd += ["--remount-ro", "/", "--chdir", "/tmp", "--clearenv"]
    for key, value in ENV.items():
        cmd += ["--setenv", key, value]
    for cap in CAPS:
        cmd += ["--cap-add", cap]
    return cmd + ["--", *argv]


@functools.cache
def probe(kind: str, python: str) -> str | None:
    """None if `kind` can start a sandbox here, else the reason it cannot."""
    tool = "bwrap" if kind == "bwrap" else "unshare"
    if shutil.which(tool) is None:
        return f"{tool} is not installed"
    uid = 65534 if os.geteuid() == 0 else None
    folder = None
    try:
        cmd, folder = command(kind, python=python, uid=uid, disk_mb=1, disk_files=64,
                              deny_shared_memory=True, program=["-I", "-c", "print('sandbox-ok')"])
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired, SandboxUnavailable) as exc:
        return f"{tool} failed to start: {exc}"
    finally:
        if folder:
            shutil.rmtree(folder, ignore_errors=True)
    if out.returncode != 0 or "sandbox-ok" not in out.stdout:
        return f"{tool} exited {out.returncode}: {out.stderr.strip()[-300:]}"
    return None


def resolve(requested: str, python: str) -> str:
    """The isolation backend to use: `requested`, or for "auto" bwrap, else unshare."""
    if requested not in ("auto", *KINDS):
        raise ValueError(f"sandbox isolation={requested!r}: allowed are 'auto', 'bwrap', 'unshare'")
    candidates = KINDS if requested == "auto" else (requested,)
    reasons = []
    for kind in candidates:
        reason = probe(kind, python)
        if reason is None:
            return kind
        reasons.append(f"{kind}: {reason}")
    raise SandboxUnavailable(
        "no sandbox isolation works here (" + "; ".join(reasons) + "). Install bubblewrap "
        "(`apt-get install bubblewrap`) and make sure user namespaces are enabled "
        "(/proc/sys/user/max_user_namespaces > 0), or use the e2b backend.")
