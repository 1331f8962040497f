"""How the local sandbox is isolated: the command line that starts it under bwrap or unshare.

Both backends give the same picture from inside: fresh pid, network, ipc and uts namespaces
(no network interface but a down loopback); a root filesystem holding only the system paths
(read-only, nosuid, nodev) and the Python installation; a fresh /proc; a minimal /dev; a
size-limited private tmpfs at /tmp (the working directory); and an unprivileged uid.

- `bwrap` (bubblewrap), when installed: as root it runs without a user namespace and drops to
  the sandbox uid with `setpriv`; as a normal user it maps the user into a user namespace.
- `unshare` (util-linux): a small init (`unshare_init.py`) builds the same filesystem with
  mount(2) and chroot, then drops to the sandbox uid when root.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

KINDS = ("bwrap", "unshare")
SYSTEM_PATHS = ("/usr", "/bin", "/lib", "/lib32", "/lib64", "/sbin", "/etc/ld.so.cache",
                "/etc/alternatives", "/etc/localtime")
ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": "/tmp", "TMPDIR": "/tmp",
       "LANG": "C.UTF-8", "USER": "sandbox", "LOGNAME": "sandbox", "MPLCONFIGDIR": "/tmp",
       "PYTHONDONTWRITEBYTECODE": "1",
       # One thread per numeric library: threads count against the process limit.
       "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
_INIT = Path(__file__).with_name("unshare_init.py")


class SandboxUnavailable(RuntimeError):
    """No isolation backend works on this machine."""


def python_paths(python: str) -> list[str]:
    """Folders the interpreter needs: its prefix, its base installation, the real binary's home."""
    paths = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}
    real = Path(os.path.realpath(python))
    paths.add(str(real.parent.parent))
    return sorted(paths)


def layout(extra_ro: tuple[str, ...], python: str) -> tuple[list[str], list[tuple[str, str]]]:
    """(read-only paths, (target, link) symlinks); host links such as /bin -> usr/bin stay links."""
    ro, links = [], []
    for path in (*SYSTEM_PATHS, *python_paths(python), *extra_ro):
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


def command(kind: str, *, python: str, argv: list[str], uid: int | None, disk_mb: int,
            extra_ro: tuple[str, ...] = ()) -> tuple[list[str], str | None]:
    """(command line, folder to remove afterwards) that runs `argv` inside a sandbox."""
    ro, links = layout(extra_ro, python)
    if kind == "bwrap":
        cmd = ["bwrap", "--die-with-parent", "--new-session", "--unshare-pid", "--unshare-net",
               "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try", "--hostname", "sandbox"]
        if uid is None:  # unprivileged: a user namespace holds the mounts
            cmd += ["--unshare-user", "--disable-userns"]
        # The private /tmp first: an interpreter installed under /tmp (a venv in a CI
        # checkout there) is then bound on top of it instead of being hidden by it.
        cmd += ["--perms", "1777", "--size", str(disk_mb * 1024 * 1024), "--tmpfs", "/tmp"]
        # bwrap creates missing parents of a mount point with mode 0700 (as root); the sandbox
        # user must be able to walk through them to the Python installation.
        parents = sorted({str(p) for path in ro for p in Path(path).parents
                          if str(p) not in ("/", "/tmp")})
        for parent in parents:
            cmd += ["--perms", "0755", "--dir", parent]
        for path in ro:
            cmd += ["--ro-bind", path, path]
        for target, link in links:
            cmd += ["--symlink", target, link]
        cmd += ["--proc", "/proc", "--dev", "/dev", "--chdir", "/tmp", "--clearenv"]
        for key, value in ENV.items():
            cmd += ["--setenv", key, value]
        if uid is not None:  # root: keep only what setpriv needs to become the sandbox user
            cmd += ["--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID",
                    "--cap-add", "CAP_SETPCAP", "--", shutil.which("setpriv") or "/usr/bin/setpriv",
                    f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "--inh-caps=-all",
                    "--bounding-set=-all", "--no-new-privs"]
        else:
            cmd += ["--"]
        return cmd + argv, None
    if kind == "unshare":
        root = tempfile.mkdtemp(prefix="turnwise-sandbox-")
        os.chmod(root, 0o755)
        config = {"root": root, "ro_paths": ro, "symlinks": links, "disk_mb": disk_mb,
                  "uid": uid, "argv": argv, "env": ENV}
        cmd = ["unshare", "--mount", "--net", "--pid", "--ipc", "--uts", "--fork", "--kill-child"]
        if os.geteuid() != 0:
            cmd += ["--user", "--map-root-user"]
        return cmd + [python, "-I", "-c", _INIT.read_text(), json.dumps(config)], root
    raise ValueError(f"sandbox isolation={kind!r}: allowed are 'auto', 'bwrap', 'unshare'")


@functools.lru_cache(maxsize=None)
def probe(kind: str, python: str) -> str | None:
    """None if `kind` can start a sandbox here, else the reason it cannot."""
    tool = "bwrap" if kind == "bwrap" else "unshare"
    if shutil.which(tool) is None:
        return f"{tool} is not installed"
    if kind == "bwrap" and os.geteuid() == 0 and shutil.which("setpriv") is None:
        return "setpriv (util-linux) is needed to drop root inside bwrap"
    uid = 65534 if os.geteuid() == 0 else None
    cmd, folder = command(kind, python=python, uid=uid, disk_mb=1,
                          argv=[python, "-I", "-c", "print('sandbox-ok')"])
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
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
