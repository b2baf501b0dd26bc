"""File primitives every stage shares: atomic writes, private folders and files, content hashes.

Everything written through them is private by default (files 0600, folders 0700), and every
failure to write (disk full, read-only or unwritable folder, a folder someone else owns or a
symbolic link where a folder is wanted) is raised as one :class:`OutputError` naming the path.
"""

from __future__ import annotations

import errno
import hashlib
import os
import pwd
import re
import tempfile
from pathlib import Path

from harness.errors import OutputError

PRIVATE_FILE = 0o600
PRIVATE_DIR = 0o700


def output_error(path: str | Path, exc: OSError, action: str = "cannot write") -> OutputError:
    """The one-line error for an ``OSError`` met while writing ``path``."""
    return OutputError(path, f"{action}: {exc.strerror or exc}")


def write_all(fd: int, data: bytes) -> None:
    """Write all of ``data`` to ``fd``: a short ``os.write`` (disk nearly full) is continued until
    it completes or raises ``OSError`` (``ENOSPC`` once nothing more fits)."""
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        if written <= 0:
            raise OSError(errno.EIO, "the write made no progress")
        view = view[written:]


def atomic_write_bytes(path: str | Path, data: bytes, mode: int = PRIVATE_FILE) -> Path:
    """Write ``data`` to ``path`` through a temporary file in the same folder and a rename.

    Readers never see a partial file; a crash or a full disk leaves the old file (or none). A
    symbolic link at ``path`` is replaced, never written through. A missing folder is created
    private (:func:`private_dir`). Raises :class:`OutputError` naming ``path``.
    """
    path = Path(path)
    if not path.parent.is_dir():
        private_dir(path.parent)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise output_error(path, exc) from None
    try:
        try:
            write_all(fd, data)
            os.fsync(fd)
            os.fchmod(fd, mode)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise output_error(path, exc) from None
        raise
    return path


def atomic_write_text(path: str | Path, text: str, mode: int = PRIVATE_FILE) -> Path:
    """Text form of :func:`atomic_write_bytes` (UTF-8)."""
    return atomic_write_bytes(path, text.encode("utf-8"), mode)


def private_dir(path: str | Path) -> Path:
    """Create ``path`` (and missing parents) as a folder only its owner can use (0700).

    A folder that already exists is used only if it is a real folder, not a symbolic link, and
    belongs to this user; it is then made 0700 (through an open handle, so a link swapped in
    meanwhile is never followed). Raises :class:`OutputError` otherwise or when it cannot be made.
    """
    path = Path(path)
    missing = []
    for folder in (path, *path.parents):
        if os.path.lexists(folder):
            break
        missing.append(folder)
    for folder in reversed(missing):
        try:
            os.mkdir(folder, PRIVATE_DIR)
        except FileExistsError:
            pass  # made meanwhile by someone else: checked below like any existing folder
        except OSError as exc:
            raise output_error(folder, exc, "cannot create folder") from None
    fd = _open_own_dir(path)
    try:
        os.fchmod(fd, PRIVATE_DIR)
    except OSError as exc:
        raise output_error(path, exc, "cannot make private") from None
    finally:
        os.close(fd)
    return path


def check_own_dir(path: str | Path) -> Path:
    """Return ``path`` if it is a real folder (not a symbolic link) owned by this user, else raise
    :class:`OutputError`; for folders the bench reads back, such as the lab's."""
    os.close(_open_own_dir(Path(path)))
    return Path(path)


def _open_own_dir(path: Path) -> int:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as exc:
        if os.path.islink(path):
            raise OutputError(path, "is a symbolic link, not a folder; refusing to use it") from None
        if exc.errno == errno.ENOTDIR:
            raise OutputError(path, "exists and is not a folder") from None
        raise output_error(path, exc, "cannot open folder") from None
    owner = os.fstat(fd).st_uid
    if owner != os.geteuid():
        os.close(fd)
        raise OutputError(path, f"belongs to {_user_name(owner)}, not to this user; refusing to use it")
    return fd


def _user_name(uid: int) -> str:
    try:
        return f"user {pwd.getpwuid(uid).pw_name} (uid {uid})"
    except KeyError:
        return f"uid {uid}"


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file, read in chunks so size does not matter."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def natural_order(path: Path) -> list[int | str]:
    """A sort key under which x.pcap, x.pcap1, ..., x.pcap10 keep their order (numbers compare as numbers)."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", path.name)]
