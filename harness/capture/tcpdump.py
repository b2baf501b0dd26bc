"""tcpdump command lines (pure functions, so quoting can be checked without running anything)."""

from __future__ import annotations

import shlex

from harness.capture.spec import SshTarget

# Printed by tcpdump on stderr once the interface is open and packets are being written.
LISTENING = "listening on"
IMMEDIATE_BUFFER_KIB = 32 * 1024


def tcpdump_argv(
    interface: str,
    pattern: str,
    bpf: str | None,
    rotate_mb: int | None,
    rotate_s: int | None,
    run_as: str | None,
    immediate: bool = True,
    tcpdump: str = "tcpdump",
) -> list[str]:
    """Arguments for a packet-buffered, nanosecond-stamped capture written to ``pattern``.

    ``run_as``: the user tcpdump keeps after opening the interface (``-Z``), so the files belong
    to the invoking user instead of tcpdump's default unprivileged account. ``immediate``:
    hand each packet over at once (else the kernel delivers them in blocks up to a second
    late) with a 32 MiB kernel buffer, which immediate mode needs to keep up with bursts.
    """
    argv = [tcpdump, "-i", interface, "-U", "-n", "--time-stamp-precision=nano", "-w", pattern]
    if immediate:
        argv += ["--immediate-mode", "-B", str(IMMEDIATE_BUFFER_KIB)]
    if run_as:
        argv += ["-Z", run_as]
    if rotate_mb:
        argv += ["-C", str(rotate_mb)]
    if rotate_s:
        argv += ["-G", str(rotate_s)]
    # "--" ends the options: the filter can never be taken for one.
    return argv + (["--", bpf] if bpf else [])


def file_pattern(folder: str, prefix: str, rotate_s: int | None) -> str:
    """The ``-w`` argument. With time rotation tcpdump expands strftime codes in it, so a '%'
    in the folder is doubled and the time (UTC, the child runs with TZ=UTC) is added."""
    if rotate_s:
        return f"{folder.replace('%', '%%')}/{prefix}-%Y%m%dT%H%M%SZ.pcap"
    return f"{folder}/{prefix}.pcap"


def ssh_argv(target: SshTarget, remote_command: str, ssh_config: str | None = None, tty: bool = True) -> list[str]:
    """``ssh`` never prompting (key authentication only), running ``remote_command``.

    ``tty`` (``-tt``): Ctrl-C written to ssh's stdin interrupts the command, and a lost
    connection hangs it up, so it never outlives the session.
    """
    argv = ["ssh", "-o", "BatchMode=yes", "-o", "ServerAliveInterval=15", "-tt" if tty else "-T"]
    if ssh_config:
        argv += ["-F", ssh_config]
    if target.port:
        argv += ["-p", str(target.port)]
    return argv + ["--", target.destination, remote_command]


def scp_argv(target: SshTarget, remote_glob: str, local_dir: str, ssh_config: str | None = None) -> list[str]:
    """``scp`` fetching the files matching ``remote_glob`` into ``local_dir``.

    ``-O``: the original scp protocol, which small access points (dropbear) support even
    without an SFTP server.
    """
    argv = ["scp", "-O", "-B", "-q", "-o", "BatchMode=yes"]
    if ssh_config:
        argv += ["-F", ssh_config]
    if target.port:
        argv += ["-P", str(target.port)]
    host = f"[{target.host}]" if ":" in target.host else target.host
    user = f"{target.user}@" if target.user else ""
    return argv + ["--", f"{user}{host}:{remote_glob}", local_dir]


def remote_start_command(remote_dir: str, argv: list[str]) -> str:
    """Shell command for the remote host: a private folder, then become tcpdump.

    Every argument is quoted; the one unquoted part, ``$(id -un)``, is ours: tcpdump keeps the
    remote user's identity (``-Z``) so it can write into that user's private folder.
    """
    rest = " ".join(shlex.quote(a) for a in argv[1:])
    return (
        f'umask 077 && mkdir -m 700 -- {shlex.quote(remote_dir)} && exec {shlex.quote(argv[0])} -Z "$(id -un)" {rest}'
    )


def remote_command(*argv: str) -> str:
    """A remote command line with every argument quoted."""
    return " ".join(shlex.quote(a) for a in argv)
