"""The SSH capture path for real: an sshd inside a network namespace this test creates."""

from __future__ import annotations

import os
import shutil
import socket
import stat
import subprocess
import time
from pathlib import Path

import pytest

from harness.capture import start_capture
from harness.files import sha256_file

from conftest import require_root, require_tool

PORT = 47_914
SSH_PORT = 2222
HOST_ADDR, NS_ADDR = "10.231.77.1", "10.231.77.2"


def _run(*argv: str) -> None:
    subprocess.run(argv, check=True, capture_output=True)


@pytest.fixture
def sshd_in_namespace(tmp_path):
    """An sshd (key auth, root) listening on a veth in a fresh namespace; yields an ssh config."""
    require_root()
    for tool in ("ip", "ssh", "scp", "ssh-keygen", "tcpdump"):
        require_tool(tool)
    sshd = shutil.which("sshd") or ("/usr/sbin/sshd" if os.path.exists("/usr/sbin/sshd") else None)
    if sshd is None:
        pytest.skip("sshd is not installed (openssh-server)")
    tag = f"{os.getpid() % 100000}"
    ns, host_if, ns_if = f"hcap{tag}", f"hcv{tag}a", f"hcv{tag}b"
    keys = tmp_path / "keys"
    keys.mkdir(mode=0o700)
    for name in ("host", "client"):
        _run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(keys / name))
    (keys / "authorized_keys").write_text((keys / "client.pub").read_text())
    os.chmod(keys / "authorized_keys", 0o600)
    (keys / "sshd_config").write_text(
        f"Port {SSH_PORT}\nListenAddress {NS_ADDR}\nHostKey {keys / 'host'}\n"
        f"AuthorizedKeysFile {keys / 'authorized_keys'}\nPermitRootLogin prohibit-password\n"
        f"PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\n"
        f"PidFile {keys / 'sshd.pid'}\nStrictModes no\n"
    )
    host_key = (keys / "host.pub").read_text().split()
    (keys / "known_hosts").write_text(f"[{NS_ADDR}]:{SSH_PORT} {host_key[0]} {host_key[1]}\n")
    (keys / "ssh_config").write_text(
        f"Host {NS_ADDR}\n  IdentityFile {keys / 'client'}\n  IdentitiesOnly yes\n"
        f"  UserKnownHostsFile {keys / 'known_hosts'}\n  StrictHostKeyChecking yes\n"
    )
    os.makedirs("/run/sshd", mode=0o755, exist_ok=True)  # sshd's privilege-separation folder
    proc = None
    try:
        _run("ip", "netns", "add", ns)
        _run("ip", "link", "add", host_if, "type", "veth", "peer", "name", ns_if)
        _run("ip", "link", "set", ns_if, "netns", ns)
        _run("ip", "addr", "add", f"{HOST_ADDR}/30", "dev", host_if)
        _run("ip", "link", "set", host_if, "up")
        _run("ip", "netns", "exec", ns, "ip", "addr", "add", f"{NS_ADDR}/30", "dev", ns_if)
        _run("ip", "netns", "exec", ns, "ip", "link", "set", ns_if, "up")
        _run("ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up")
        proc = subprocess.Popen(
            ["ip", "netns", "exec", ns, sshd, "-D", "-e", "-f", str(keys / "sshd_config")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection((NS_ADDR, SSH_PORT), timeout=0.5).close()
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    pytest.skip(
                        f"sshd did not start: {proc.stderr.read1().decode() if proc.poll() is not None else 'timeout'}"
                    )
                time.sleep(0.1)
        yield {"config": keys / "ssh_config", "ns_if": ns_if}
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(10)
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        subprocess.run(["ip", "link", "del", host_if], capture_output=True)


@pytest.mark.root
def test_capture_over_ssh(tmp_path, sshd_in_namespace):
    out = tmp_path / "capture"
    spec = f"ssh://root@{NS_ADDR}:{SSH_PORT}/{sshd_in_namespace['ns_if']}"
    handle = start_capture(spec, out, device=HOST_ADDR, bpf=f"udp port {PORT}", ssh_config=sshd_in_namespace["config"])
    remote_dir = handle._remote_dir
    assert remote_dir is not None and Path(remote_dir).is_dir()  # same filesystem as the namespace
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx:
        tx.bind((HOST_ADDR, 0))
        for i in range(6):
            tx.sendto(i.to_bytes(4, "big"), (NS_ADDR, PORT))
            tx.sendto(i.to_bytes(4, "big"), (NS_ADDR, PORT + 1))  # filtered out
    files = handle.stop(tail_s=1.2)
    assert not handle.running
    assert not Path(remote_dir).exists()  # removed on the remote side
    assert len(files) == 1
    capture = files[0]
    assert capture.path.parent == out.resolve()
    assert stat.S_IMODE(capture.path.stat().st_mode) == 0o600
    assert capture.sha256 == sha256_file(capture.path)
    lines = subprocess.run(["tcpdump", "-n", "-r", str(capture.path)], capture_output=True, text=True).stdout
    assert lines.count(f"> {NS_ADDR}.{PORT}:") == 6
    assert f".{PORT + 1}:" not in lines
