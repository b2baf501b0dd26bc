"""Fault injection: kill -9 twin runs at random moments, resume them, and check that nothing is lost.

Each round starts ``harness run SCRIPT --twin`` (or resumes the run a kill left) as a child, kills
it with SIGKILL after a random delay, and checks before the next resume that no process of the
run is left (the twin and tcpdump must die with the bench). A run that finishes before its kill
is checked and a new one started, until ``--kills`` kills have landed. Every finished run must
have completed every plan item exactly once, list every capture file of its folder in its
manifest with the hash of what is on disk, hold no capture still ``writing`` and no reserve file.
Runs in a private virtual lab on its own loopback addresses. Exit status 1 when any check fails.

    python benchmarks/kill_resume.py [--kills 20] [--seed 1] [--max-delay 40] [--keep]
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np
import yaml

from harness.files import sha256_file
from harness.rundir.events import ItemCompleted, RunFinished, read_events
from harness.rundir.layout import RunDir
from harness.rundir.manifest import read_manifest

ROOT = Path(__file__).resolve().parents[1]
NETWORK = {
    "device": "127.0.93.2",
    "resolver": "127.0.93.53",
    "platform_pool": "127.0.94.0/24",
    "vendor_pool": "127.0.95.0/24",
}
GONE_WITHIN_S = 30.0  # a child of a killed bench must be gone this long after the kill (the twin finishes its truth)


def persona(folder: Path) -> Path:
    """The demo persona, every utterance once, short gaps and answer limits."""
    data = yaml.safe_load((ROOT / "utterances" / "demo.yaml").read_text())
    data["session"] = {"gap_s": 1, "max_answer_s": 6, "answer_timeout_s": 5, "retries": 0}
    path = folder / "persona.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def twin_config(folder: Path) -> Path:
    from harness.twin.config import DEFAULT_CONFIG

    config = yaml.safe_load(DEFAULT_CONFIG.read_text())
    config["network"].update(NETWORK)
    path = folder / "twin.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def run_processes(run: Path) -> list[tuple[int, str]]:
    """Processes (other than ours) whose command line names the run directory: the bench, its twin, tcpdump."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        line = " ".join(a.decode(errors="replace") for a in argv if a)
        if str(run) in line and state != "Z":
            found.append((int(entry.name), line))
    return found


def left_behind(run: Path) -> list[tuple[int, str]]:
    """What of the run still runs ``GONE_WITHIN_S`` after its bench was killed."""
    deadline = time.monotonic() + GONE_WITHIN_S
    while (alive := run_processes(run)) and time.monotonic() < deadline:
        time.sleep(0.1)
    return alive


def check_finished(run: Path) -> list[str]:
    """The faults of a finished run (empty: nothing lost)."""
    rundir, faults = RunDir(run), []
    manifest = read_manifest(rundir)
    events = read_events(rundir.events).events
    done = Counter(e.plan_index for e in events if isinstance(e, ItemCompleted))
    if done != Counter(range(len(manifest.plan))):
        faults.append(f"items not completed exactly once: {dict(done)} for a plan of {len(manifest.plan)}")
    if not any(isinstance(e, RunFinished) for e in events) or manifest.status != "finished":
        faults.append(f"not finished (manifest: {manifest.status})")
    listed = {rundir.resolve(c.path): c for c in manifest.captures}
    for path in rundir.capture_files():
        entry = listed.get(path)
        if entry is None:
            faults.append(f"{path.name} is not in the manifest")
        elif entry.state not in ("closed", "recovered") or entry.sha256 != sha256_file(path):
            faults.append(
                f"{path.name}: state {entry.state}, "
                f"hash {'matches' if entry.sha256 == sha256_file(path) else 'differs'}"
            )
    faults += [
        f"{c.path} listed but absent"
        for c in manifest.captures
        if c.state != "missing" and not rundir.resolve(c.path).exists()
    ]
    if rundir.reserve.exists():
        faults.append("reserve file left")
    return faults


def all_done(run: Path) -> bool:
    """Whether the run had finished and closed its captures before it was killed."""
    manifest = read_manifest(RunDir(run))
    return manifest.status == "finished" and all(c.state != "writing" for c in manifest.captures)


def finish(run: Path, finished: list[Path]) -> list[str]:
    """Check a finished run, print it and return its faults."""
    problems = check_finished(run)
    finished.append(run)
    print(
        f"run {run.name} finished after {len(read_manifest(RunDir(run)).segments)} segments: "
        f"{'ok' if not problems else '; '.join(problems)}",
        flush=True,
    )
    return [f"{run.name}: {p}" for p in problems]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--max-delay", type=float, default=40.0, help="kill within this many seconds of a (re)start")
    parser.add_argument("--keep", action="store_true", help="keep the scratch folder")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    from harness.audio.lab import lab_down, lab_up

    folder = Path(tempfile.mkdtemp(prefix="kill-resume-"))
    lab = lab_up(folder / "lab")
    env = {**os.environ, **lab.environment(), "HARNESS_LAB_DIR": str(lab.base), "HARNESS_CACHE": str(folder / "cache")}
    script, config, runs = persona(folder), twin_config(folder), folder / "runs"
    base = [sys.executable, "-m", "harness.cli.main", "run"]
    new_run = [
        *base,
        str(script),
        "--twin",
        "--twin-config",
        str(config),
        "--runs-dir",
        str(runs),
        "--quiet-lead",
        "2",
        "--capture-tail",
        "2",
    ]
    kills, starts, faults, delays, lost = 0, 0, [], [], []
    finished: list[Path] = []
    current: Path | None = None
    began = time.monotonic()
    try:
        while kills < args.kills or current is not None:
            before = set(runs.glob("*")) if runs.exists() else set()
            argv = [*base, "--resume", str(current)] if current else new_run
            proc = subprocess.Popen(argv, env=env, cwd=folder, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            starts += 1
            delay = rng.uniform(0.0, args.max_delay) if kills < args.kills else None
            try:
                status = proc.wait(delay)
            except subprocess.TimeoutExpired:
                proc.send_signal(signal.SIGKILL)
                proc.wait()
                kills += 1
                delays.append(delay)
                if current is None:
                    made = sorted(set(runs.glob("*")) - before)
                    current = made[0] if made else None
                if current is None:
                    print(f"kill {kills} at {delay:.1f} s: before the run directory existed", flush=True)
                    continue
                alive = left_behind(current)
                if alive:
                    faults.append(f"{current.name}: left running after kill {kills}: {alive}")
                    for pid, _ in alive:
                        os.kill(pid, signal.SIGKILL)
                if not RunDir(current).manifest.exists():  # killed before its first record: nothing to resume
                    lost.append(current.name)
                    shutil.rmtree(current)
                    current = None
                print(
                    f"kill {kills} at {delay:.1f} s: {current.name if current else 'before the manifest'}", flush=True
                )
                if current is not None and all_done(current):  # killed on its way out: nothing left to resume
                    faults += finish(current, finished)
                    current = None
                continue
            err = proc.stderr.read().decode(errors="replace").strip() if proc.stderr else ""
            run = current or max(runs.glob("*"))
            if status != 0:
                faults.append(f"{run.name}: exit {status}: {err.splitlines()[-1] if err else ''}")
                current = None
                continue
            faults += finish(run, finished)
            current = None
    finally:
        lab_down(lab.base)
        if not args.keep:
            shutil.rmtree(folder, ignore_errors=True)
    minutes = (time.monotonic() - began) / 60
    d = np.array(delays) if delays else np.zeros(1)
    print(
        f"\n{kills} kills (delay p50 {np.percentile(d, 50):.1f} s, max {d.max():.1f} s), {starts} starts, "
        f"{len(finished)} runs finished, {len(lost)} killed before their manifest, {minutes:.1f} min"
    )
    print(f"faults: {len(faults)}")
    for fault in faults:
        print(f"  {fault}")
    if args.keep:
        print(f"kept: {folder}")
    return 1 if faults else 0


if __name__ == "__main__":
    sys.exit(main())
