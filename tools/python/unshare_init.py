"""Init of the `unshare` backend: builds the sandbox's filesystem, drops privileges, runs code.

Started as `unshare --mount --net --pid --ipc --uts --fork [--user --map-root-user] python -I -c
<this file's text> <config as JSON>`, so it is pid 1 of fresh namespaces and may mount. It:

1. makes every mount private, so nothing done here is seen by the host;
2. builds a new root on a small tmpfs: the configured host paths bind-mounted read-only
   (nosuid, nodev) where the config places them, a minimal /dev, a fresh /proc, and a
   size-limited tmpfs at /tmp;
3. forks; the child chroots into the new root and execs `confine` (which drops to the sandbox
   uid and execs the runner); pid 1 reaps and exits with the runner's status.
"""

import ctypes
import json
import os
import sys

# Run as `python -c <this text> <json>`; importing this module does nothing.
CONFIG = json.loads(sys.argv[1]) if __name__ == "__main__" else {}
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 32, 4096, 16384, 1 << 18
MS_NOATIME, MS_NODIRATIME, MS_RELATIME = 1024, 2048, 1 << 21
libc = ctypes.CDLL(None, use_errno=True)


def _bytes(text):
    return text.encode() if text is not None else None


def mount(source, target, fstype, flags, data=None):
    if libc.mount(_bytes(source), _bytes(target), _bytes(fstype), flags, _bytes(data)) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"mount {source} -> {target}: {os.strerror(err)}")


def locked_flags(path):
    # Inside a user namespace a remount must keep the flags the host mount has.
    f = os.statvfs(path).f_flag
    flags = 0
    for st, ms in ((1, MS_RDONLY), (2, MS_NOSUID), (4, MS_NODEV), (8, MS_NOEXEC),
                   (1024, MS_NOATIME), (2048, MS_NODIRATIME), (4096, MS_RELATIME)):
        if f & st:
            flags |= ms
    return flags


def bind_readonly(root, path, inside):
    target = root + inside
    if os.path.isdir(path):
        os.makedirs(target, exist_ok=True)
    else:
        os.makedirs(os.path.dirname(target), exist_ok=True)
        open(target, "a").close()
    mount(path, target, None, MS_BIND)
    flags = MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV | locked_flags(path)
    mount(None, target, None, flags)


def build_root():
    mount(None, "/", None, MS_REC | MS_PRIVATE)
    root = CONFIG["root"]  # an empty host directory; the tmpfs over it is seen only by us
    mount("tmpfs", root, "tmpfs", MS_NOSUID | MS_NODEV, "size=4m,mode=755")
    # The private /tmp before the binds, so an interpreter under /tmp is bound on top of it.
    os.makedirs(root + "/tmp")
    mount("tmpfs", root + "/tmp", "tmpfs", MS_NOSUID | MS_NODEV,
          f"size={CONFIG['disk_mb']}m,mode=1777")
    for path, inside in CONFIG["binds"]:
        bind_readonly(root, path, inside)
    for target, link in CONFIG["symlinks"]:  # e.g. /bin -> usr/bin, as on the host
        os.symlink(target, root + link)
    os.makedirs(root + "/proc")
    mount("proc", root + "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    for path in CONFIG["hidden"]:  # e.g. /proc/keys, which lists keys the user may view
        mount(CONFIG["empty"], root + path, None, MS_BIND)
    os.makedirs(root + "/dev")
    mount("tmpfs", root + "/dev", "tmpfs", MS_NOSUID | MS_NOEXEC, "size=64k,mode=755")
    for dev in CONFIG["devices"]:
        open(f"{root}/dev/{dev}", "a").close()
        mount(f"/dev/{dev}", f"{root}/dev/{dev}", None, MS_BIND)
    for name, target in CONFIG["dev_links"]:
        os.symlink(target, f"{root}/dev/{name}")
    mount(None, root + "/dev", None, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NOEXEC)
    mount(None, root, None, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV)
    return root


def child(root):
    os.chroot(root)
    os.chdir("/tmp")
    argv = CONFIG["argv"]
    os.execve(argv[0], argv, CONFIG["env"])


def main():
    try:
        root = build_root()
    except OSError as exc:
        sys.stderr.write(f"sandbox setup failed: {exc}\n")
        os._exit(70)
    pid = os.fork()
    if pid == 0:
        try:
            child(root)
        except BaseException as exc:
            sys.stderr.write(f"sandbox setup failed: {exc}\n")
        os._exit(70)
    while True:  # pid 1 adopts orphans: reap them all, exit with the runner's status
        try:
            done, status = os.wait()
        except ChildProcessError:
            os._exit(70)
        if done == pid:
            os._exit(os.waitstatus_to_exitcode(status) if os.WIFEXITED(status)
                     else 128 + os.WTERMSIG(status))


if __name__ == "__main__":
    main()
