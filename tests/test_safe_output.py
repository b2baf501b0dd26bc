"""Writing safely: whole log records or an error, one line naming the file when a disk is full
or a folder unwritable, private files in private folders, no writing through links or into
folders someone else owns. Full and read-only disks are real tmpfs mounts (root only)."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from harness.cli.main import main
from harness.errors import OutputError
from harness.files import PRIVATE_DIR, PRIVATE_FILE, atomic_write_bytes, atomic_write_text, private_dir
from harness.jsonl import JsonlLog, read_jsonl
from harness.wav import write_wav

OTHER_UID = 54321


def _mount_tmpfs(folder: Path, options: str) -> None:
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    folder.mkdir(exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A real 64 KiB filesystem."""
    folder = tmp_path / "disk"
    _mount_tmpfs(folder, "size=64k,mode=0700")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


@pytest.fixture
def read_only(tmp_path: Path) -> Iterator[Path]:
    """A folder nothing can be written to: a read-only tmpfs as root, a 0500 folder otherwise."""
    folder = tmp_path / "ro"
    if os.geteuid() != 0:
        folder.mkdir(mode=0o500)
        yield folder
        return
    _mount_tmpfs(folder, "size=64k,ro")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def fill(disk: Path) -> Path:
    """Take every free byte of ``disk`` with one file; returns it (delete it to free the space)."""
    filler = disk / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for size in (65536, 4096, 1):
            try:
                while True:
                    os.write(fd, b"\0" * size)
            except OSError:
                continue
    finally:
        os.close(fd)
    return filler


def test_append_on_a_full_disk_raises_and_never_tears_a_record(small_disk):
    path = small_disk / "events.jsonl"
    with JsonlLog(path) as log:
        log.append({"seq": 1, "event": "first"})
        before = path.read_bytes()
        filler = fill(small_disk)
        # Larger than the room left in the log's last page: the kernel writes part, then refuses.
        with pytest.raises(OutputError) as caught:
            log.append({"seq": 2, "text": "x" * 10_000})
        assert str(caught.value).startswith(f"{path}: cannot write: No space left on device")
        assert "\n" not in str(caught.value)
        assert path.read_bytes() == before  # the partial record was cut off again
        filler.unlink()
        log.append({"seq": 3, "event": "after"})
    assert [r["seq"] for r in read_jsonl(path, strict=True)] == [1, 3]


def test_a_record_torn_by_a_crash_is_not_glued_to_the_next(tmp_path):
    path = tmp_path / "events.jsonl"
    path.write_bytes(b'{"seq":1}\n{"seq":2,"tex')
    with JsonlLog(path) as log:
        log.append({"seq": 3})
    assert [r["seq"] for r in read_jsonl(path)] == [1, 3]


def test_atomic_write_on_a_full_disk_keeps_the_old_file_and_leaves_no_scraps(small_disk):
    path = small_disk / "table.csv"
    atomic_write_text(path, "old\n")
    fill(small_disk)
    with pytest.raises(OutputError, match=r"table\.csv: cannot write: No space left on device$"):
        atomic_write_bytes(path, b"y" * 20_000)
    assert path.read_text() == "old\n"
    assert sorted(p.name for p in small_disk.iterdir()) == ["filler", "table.csv"]


def test_a_wav_on_a_full_disk_is_one_error_naming_it(small_disk):
    fill(small_disk)
    target = small_disk / "answers" / "a.wav"
    with pytest.raises(OutputError, match="answers"):
        write_wav(target, np.zeros(22050, dtype=np.float32), 22050)


def test_every_primitive_names_the_file_in_an_unwritable_folder(read_only):
    for write in (
        lambda: atomic_write_text(read_only / "report.html", "x"),
        lambda: JsonlLog(read_only / "events.jsonl"),
        lambda: private_dir(read_only / "capture"),
        lambda: write_wav(read_only / "new" / "a.wav", np.zeros(10, dtype=np.float32), 8000),
    ):
        with pytest.raises(OutputError) as caught:
            write()
        assert str(caught.value).startswith(str(read_only / ""))
        assert "\n" not in str(caught.value)


PREBID = Path(__file__).parent / "data" / "ads" / "prebid.jsonl"


def test_ads_report_on_a_full_disk_is_one_line_and_exit_1(small_disk, tmp_path, capsys):
    fill(small_disk)
    report = small_disk / "ads.html"
    status = main(["ads", str(PREBID), "--format", "json", "--resamples", "100", "--report", str(report)])
    err = capsys.readouterr().err.strip()
    assert status == 1
    assert err.splitlines() == [f"harness: error: {small_disk / 'ads.html'}: cannot write: No space left on device"]


def test_stdout_on_a_full_disk_is_one_line_and_exit_1(small_disk):
    fill(small_disk)
    with open(small_disk / "filler", "r+b") as fh:
        fh.truncate(os.path.getsize(small_disk / "filler") - 2048)  # room for a little, not for all
    with open(small_disk / "out.json", "wb") as out:
        done = subprocess.run(
            [sys.executable, "-m", "harness.cli.main", "ads", str(PREBID), "--resamples", "100", "--format", "json"],
            stdout=out,
            stderr=subprocess.PIPE,
            text=True,
        )
    assert done.returncode == 1
    expected = "harness: error: standard output: cannot write: No space left on device"
    assert done.stderr.strip().splitlines() == [expected]


def test_files_and_folders_are_private_by_default(tmp_path):
    os.umask(0o022)
    folder = private_dir(tmp_path / "a" / "b")
    assert stat.S_IMODE(folder.stat().st_mode) == PRIVATE_DIR
    assert stat.S_IMODE((tmp_path / "a").stat().st_mode) == PRIVATE_DIR
    written = atomic_write_text(tmp_path / "new" / "flows.csv", "x")
    assert stat.S_IMODE(written.stat().st_mode) == PRIVATE_FILE
    assert stat.S_IMODE(written.parent.stat().st_mode) == PRIVATE_DIR
    with JsonlLog(tmp_path / "log.jsonl"):
        pass
    assert stat.S_IMODE((tmp_path / "log.jsonl").stat().st_mode) == PRIVATE_FILE
    wav = write_wav(tmp_path / "a.wav", np.zeros(10, dtype=np.float32), 8000)
    assert stat.S_IMODE(wav.stat().st_mode) == PRIVATE_FILE


def test_a_folder_reached_through_a_symlink_is_refused_and_its_target_untouched(tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir(mode=0o755)
    os.chmod(elsewhere, 0o755)
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "analysis").symlink_to(elsewhere)
    with pytest.raises(OutputError, match=r"analysis: is a symbolic link, not a folder; refusing to use it$"):
        private_dir(tmp_path / "run" / "analysis")
    assert stat.S_IMODE(elsewhere.stat().st_mode) == 0o755
    assert list(elsewhere.iterdir()) == []


def test_a_folder_owned_by_someone_else_is_refused(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("giving a folder to another user needs root")
    theirs = tmp_path / "capture"
    theirs.mkdir()
    os.chmod(theirs, 0o777)
    os.chown(theirs, OTHER_UID, OTHER_UID)
    with pytest.raises(OutputError, match=rf"capture: belongs to uid {OTHER_UID}, not to this user"):
        private_dir(theirs)
    assert stat.S_IMODE(theirs.stat().st_mode) == 0o777 and theirs.stat().st_uid == OTHER_UID


def test_output_files_replace_links_instead_of_writing_through_them(tmp_path):
    victim = tmp_path / "victim"
    victim.write_text("keep")
    os.chmod(victim, 0o644)
    link = tmp_path / "report.html"
    link.symlink_to(victim)
    atomic_write_text(link, "report")
    assert victim.read_text() == "keep" and stat.S_IMODE(victim.stat().st_mode) == 0o644
    assert not link.is_symlink() and link.read_text() == "report"
    log_link = tmp_path / "events.jsonl"
    log_link.symlink_to(victim)
    with pytest.raises(OutputError, match="events.jsonl: cannot open for appending"):
        JsonlLog(log_link)
    assert victim.read_text() == "keep"


def test_a_regular_file_where_a_folder_is_wanted_is_one_line(tmp_path):
    (tmp_path / "capture").write_text("")
    with pytest.raises(OutputError, match="capture: exists and is not a folder"):
        private_dir(tmp_path / "capture")


def test_json_records_round_trip(tmp_path):
    path = tmp_path / "x.jsonl"
    with JsonlLog(path) as log:
        log.append({"text": "ü\u2028", "n": 1})
    assert json.loads(path.read_text(encoding="utf-8").split("\n")[0]) == {"text": "ü\u2028", "n": 1}


def test_the_speech_cache_is_private_even_when_it_was_not(tmp_path):
    from harness.script.models import SpeechSettings
    from harness.speech import synthesize

    from conftest import require_tool

    require_tool("espeak-ng")
    cache = tmp_path / "cache" / "speech"
    first = synthesize("Alexa, stop.", SpeechSettings(), cache)
    assert stat.S_IMODE(cache.stat().st_mode) == PRIVATE_DIR
    assert stat.S_IMODE((tmp_path / "cache").stat().st_mode) == PRIVATE_DIR
    assert stat.S_IMODE(first.path.stat().st_mode) == PRIVATE_FILE
    os.chmod(cache, 0o755)  # as an older version left it
    os.chmod(first.path, 0o644)
    again = synthesize("Alexa, stop.", SpeechSettings(), cache)
    assert again.cache_hit
    assert stat.S_IMODE(cache.stat().st_mode) == PRIVATE_DIR and stat.S_IMODE(again.path.stat().st_mode) == PRIVATE_FILE


def test_the_ads_report_is_private(tmp_path, capsys):
    report = tmp_path / "ads.html"
    assert main(["ads", str(PREBID), "--format", "json", "--resamples", "100", "--report", str(report)]) == 0
    assert stat.S_IMODE(report.stat().st_mode) == PRIVATE_FILE
