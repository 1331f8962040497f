"""The sandbox's last step before the runner: take away what code inside must not have.

Both isolation backends start it as `python -I -S -c <this file's text> <config as JSON>` in the
sandbox's fresh namespaces, with just the privileges these steps need (root, or the capabilities
bwrap keeps); it imports nothing from turnwise. In order, it:

1. bounds the number of files in /tmp (a remount: bwrap's --tmpfs cannot set nr_inodes);
2. takes the loopback interface down (bwrap brings it up), so there is no network at all;
3. empties the capability bounding set, drops to the sandbox uid, clears every capability;
4. joins a session keyring of the sandbox uid, so the host's session keyring is not possessed;
5. sets no_new_privs and a seccomp filter that refuses the keyring system calls, new user
   namespaces, and, when no memory cgroup counts them, SysV shared memory and memfd files;
6. runs the program (`code`, with `argv`) in this same process, as `python -I -c code *argv`
   would, after importing `site` (skipped at start to be quick): one interpreter start, not two.
"""

import ctypes
import json
import os
import struct
import sys

# Run as `python -c <this text> <json>`; importing this module does nothing.
CONFIG = json.loads(sys.argv[1]) if __name__ == "__main__" else {}
libc = ctypes.CDLL(None, use_errno=True)

MS_NOSUID, MS_NODEV, MS_REMOUNT = 2, 4, 32
AF_INET, SOCK_DGRAM, IFF_UP = 2, 2, 1
SIOCGIFFLAGS, SIOCSIFFLAGS, SIOCSIFADDR = 0x8913, 0x8914, 0x8916
PR_CAPBSET_DROP, PR_SET_NO_NEW_PRIVS, PR_SET_SECCOMP, PR_CAP_AMBIENT = 24, 38, 22, 47
PR_CAP_AMBIENT_CLEAR_ALL, SECCOMP_MODE_FILTER, CAPABILITY_VERSION_3 = 4, 2, 0x20080522
KEYCTL_JOIN_SESSION_KEYRING, CLONE_NEWUSER, EPERM, ENOSYS = 1, 0x10000000, 1, 38
# machine -> (AUDIT_ARCH_*, system call numbers); x86_64 numbers from 0x40000000 are x32 calls.
ARCHES = {
    "x86_64": (0xC000003E, {"keyctl": 250, "add_key": 248, "request_key": 249, "unshare": 272,
                            "clone": 56, "clone3": 435, "shmget": 29, "memfd_create": 319}),
    "aarch64": (0xC00000B7, {"keyctl": 219, "add_key": 217, "request_key": 218, "unshare": 97,
                             "clone": 220, "clone3": 435, "shmget": 194, "memfd_create": 279}),
}


def check(result, what):
    if result == -1:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")
    return result


def limit_tmp_files(count):
    check(libc.mount(None, b"/tmp", None, MS_REMOUNT | MS_NOSUID | MS_NODEV,
                     f"nr_inodes={count}".encode()), "remount /tmp with nr_inodes")


def loopback_down():
    # As in a fresh network namespace: no address and down, so connections fail at once.
    # (Through libc, as the rest: importing socket and fcntl would slow every sandbox start.)
    def ifreq(layout, *values):  # struct ifreq: the name "lo", then a union of 24 bytes
        data = struct.pack(layout, b"lo", *values)
        return ctypes.create_string_buffer(data, len(data))

    sock = check(libc.socket(AF_INET, SOCK_DGRAM, 0), "socket")
    try:
        request = ifreq("16sh22x", 0)
        check(libc.ioctl(sock, SIOCGIFFLAGS, request), "read the loopback's flags")
        flags = struct.unpack("16sh22x", request.raw)[1]
        if flags & IFF_UP:
            no_address = ifreq("16sH14x8x", AF_INET)  # sockaddr_in 0.0.0.0
            check(libc.ioctl(sock, SIOCSIFADDR, no_address), "remove the loopback's address")
            down = ifreq("16sh22x", flags & ~IFF_UP)
            check(libc.ioctl(sock, SIOCSIFFLAGS, down), "take the loopback down")
    finally:
        os.close(sock)


def drop_privileges(uid):
    with open("/proc/sys/kernel/cap_last_cap") as f:
        last = int(f.read())
    for cap in range(last + 1):  # while CAP_SETPCAP is still held
        check(libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0), f"drop capability {cap}")
    check(libc.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0), "clear ambient caps")
    if uid is not None:
        os.setgroups([])
        os.setresgid(uid, uid, uid)
        os.setresuid(uid, uid, uid)
    header = ctypes.create_string_buffer(struct.pack("Ii", CAPABILITY_VERSION_3, 0))
    empty = ctypes.create_string_buffer(24)  # effective, permitted, inheritable: two words each
    check(libc.capset(header, empty), "clear capabilities")


def join_session_keyring(nr_keyctl):
    # A named keyring of the sandbox uid: without privileges, concurrent sandboxes of one host
    # user share it instead of each using up the user's key quota; the seccomp filter below
    # keeps anything from being put in it.
    try:
        check(libc.syscall(nr_keyctl, KEYCTL_JOIN_SESSION_KEYRING, b"turnwise-sandbox"),
              "join a session keyring")
    except OSError as exc:
        if exc.errno != ENOSYS:  # a kernel without keyrings has nothing to hide
            raise


def seccomp_program(arch, calls, deny_shared_memory):
    """A classic BPF program: errno for the listed calls, CLONE_NEWUSER and other ABIs."""
    ld, jeq, jge, jset, ret = 0x20, 0x15, 0x35, 0x45, 0x06
    allow, eperm, enosys = 0x7FFF0000, 0x00050000 | EPERM, 0x00050000 | ENOSYS
    denied = ["keyctl", "add_key", "request_key"]
    if deny_shared_memory:
        denied += ["shmget", "memfd_create"]
    code = [(ld, 0, 0, 4), (jeq, 0, "deny", arch), (ld, 0, 0, 0)]  # arch, then the call number
    if arch == ARCHES["x86_64"][0]:
        code.append((jge, "deny", 0, 0x40000000))
    code += [(jeq, "deny", 0, calls[name]) for name in denied]
    code += [(jeq, "flags", 0, calls["unshare"]), (jeq, "flags", 0, calls["clone"]),
             (jeq, "enosys", 0, calls["clone3"]),  # its flags are out of reach: libc falls back
             (ret, 0, 0, allow)]
    labels = {"flags": len(code), "deny": len(code) + 2, "enosys": len(code) + 4}
    code += [(ld, 0, 0, 16), (jset, 0, 1, CLONE_NEWUSER),  # the low word of the first argument
             (ret, 0, 0, eperm), (ret, 0, 0, allow), (ret, 0, 0, enosys)]
    out = []
    for i, (op, jt, jf, k) in enumerate(code):
        jt, jf = (labels[j] - i - 1 if isinstance(j, str) else j for j in (jt, jf))
        out.append(struct.pack("HBBI", op, jt, jf, k))
    return b"".join(out), len(code)


def forbid(deny_shared_memory):
    machine = os.uname().machine
    if machine not in ARCHES:
        raise OSError(0, f"no seccomp filter for machine {machine!r}: known are {list(ARCHES)}")
    arch, calls = ARCHES[machine]
    join_session_keyring(calls["keyctl"])
    check(libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "set no_new_privs")
    program, length = seccomp_program(arch, calls, deny_shared_memory)
    buffer = ctypes.create_string_buffer(program, len(program))
    fprog = struct.pack("HP", length, ctypes.addressof(buffer))  # struct sock_fprog
    check(libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, fprog, 0, 0), "install seccomp")


def main():
    try:
        limit_tmp_files(CONFIG["tmp_files"])
        loopback_down()
        drop_privileges(CONFIG["uid"])
        forbid(CONFIG["deny_shared_memory"])
    except OSError as exc:
        sys.stderr.write(f"sandbox setup failed: {exc}\n")
        os._exit(70)
    sys.argv = ["-c", *CONFIG["argv"]]
    import site  # noqa: PLC0415 -- only now: the program's packages are found from here on

    site.main()
    exec(compile(CONFIG["code"], "<string>", "exec"),
         {"__name__": "__main__", "__builtins__": sys.modules["builtins"]})


if __name__ == "__main__":
    main()
