"""Activation detection on the real Echo captures against the fixed 12 KB/s per-second baseline.

    .venv/bin/python benchmarks/activations_real.py [--details]

Reads every capture of the shared echo-captures folder (its top level and ``dev/``; the folder is
``$HARNESS_SHARED/data/echo-captures`` or ``../shared/data/echo-captures`` beside the checkout,
as the tests find it) and exits cleanly when it is absent.

Reference. The dataset has no log of when each command was spoken; its README says what a
detector must find: one activation per spoken command. So:
- the expected count per file is the one its name states (``..._5_30s``: 5; one file says 6
  and its traffic shows 6 requests), else 5 as the README says;
- onsets are known only for the two top-level captures (the first upstream packet of each of the
  five uploads, reviewed by hand for the project's tests) and, coarsely, for the two ``_capture``
  files whose names give the planned seconds of each command (the Echo uploads 0-3 s later).
Where onsets are known, a found activation is a true positive when its onset is within 1 s of an
unmatched reference onset. Elsewhere only counts can be scored: true positives = min(found,
expected), false positives = the excess, false negatives = the shortfall; this cannot see one
miss hidden by one false alarm, so the output also flags activations closer than 10 s to the
previous one (commands were spaced 13 s or more).

Baseline: the device's upstream bytes (every endpoint) in whole seconds from its first packet; a
second above 12,000 bytes is active, consecutive active seconds are one activation, its onset the
first upstream packet of its first second. Both methods score in the same run on the same reads.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from harness.correlate import detect_activations, read_capture
from harness.correlate.capture import CaptureView

REPO = Path(__file__).resolve().parents[1]
HOMES = {"home_a": "10.63.7.79", "home_b": "192.168.86.40"}
TOP = {  # device, reviewed onsets (s from the first packet)
    "tell_me_a_joke_5x30s.pcapng": ("192.168.86.40", [5.44, 54.92, 105.35, 160.48, 219.71]),
    "what_is_the_weather_5x30s.pcapng": ("10.63.7.79", [2.17, 31.37, 63.33, 98.27, 128.13]),
}
BASELINE_BYTES = 12_000
MATCH_S = 1.0
PLANNED_LATE_S = (-1.0, 4.0)  # the Echo uploads after the wake word, some time after the planned second
CLOSE_S = 10.0
COUNT = re.compile(r"_(\d+)(?:x\d+s|_\d+s|(?:_\d+)*_capture)?$")


@dataclass
class Score:
    tp: int = 0
    fp: int = 0
    fn: int = 0

    def add(self, other: Score) -> None:
        self.tp, self.fp, self.fn = self.tp + other.tp, self.fp + other.fp, self.fn + other.fn

    def prf(self) -> tuple[float, float, float]:
        p = self.tp / (self.tp + self.fp) if self.tp + self.fp else 1.0
        r = self.tp / (self.tp + self.fn) if self.tp + self.fn else 1.0
        return p, r, 2 * p * r / (p + r) if p + r else 0.0


def shared_folder() -> Path:
    return Path(os.environ.get("HARNESS_SHARED", REPO.parent / "shared")) / "data" / "echo-captures"


def expected(path: Path) -> tuple[str, int, list[float] | None, list[float] | None]:
    """Device, expected count, reviewed onsets (or None) and planned onsets (or None) of a capture."""
    if path.name in TOP:
        device, onsets = TOP[path.name]
        return device, len(onsets), onsets, None
    home, _, command = path.stem.partition("__")
    match = COUNT.search(command)
    count = int(match.group(1)) if match else 5
    # "..._5_60_80_100_120_140_capture": the count, then the planned second of each command
    planned = [float(s) for s in command.split("_") if s.isdigit()][1:] if command.endswith("_capture") else None
    return HOMES[home], count, None, planned


def baseline(view: CaptureView) -> np.ndarray:
    """Onsets (ns) of the fixed-threshold baseline: runs of seconds above 12 KB of upstream."""
    p = view.packets
    ts, length = p.ts_ns[p.up], p.length[p.up]
    if not len(ts):
        return np.array([], np.int64)
    second = (ts - p.ts_ns[0]) // 1_000_000_000
    seconds, first, index = np.unique(second, return_index=True, return_inverse=True)
    active = np.bincount(index, weights=length) > BASELINE_BYTES
    opens = active & ~np.r_[False, active[:-1] & (np.diff(seconds) == 1)]
    return ts[first[opens]]


def score_onsets(
    found_s: np.ndarray, reference_s: list[float], tolerance: tuple[float, float]
) -> tuple[Score, list[float]]:
    """Greedy matching in time order of found onsets to reference onsets within the tolerance; errors of matches."""
    free = list(reference_s)
    errors = []
    for f in np.sort(found_s):
        near = [r for r in free if tolerance[0] <= f - r <= tolerance[1]]
        if near:
            best = min(near, key=lambda r: abs(f - r))
            free.remove(best)
            errors.append(float(f - best))
    return Score(len(errors), len(found_s) - len(errors), len(free)), errors


def score_file(
    found_s: np.ndarray, count: int, onsets: list[float] | None, planned: list[float] | None
) -> tuple[Score, list[float]]:
    if onsets is not None:
        return score_onsets(found_s, onsets, (-MATCH_S, MATCH_S))
    if planned is not None:
        return score_onsets(found_s, planned, PLANNED_LATE_S)
    return Score(min(len(found_s), count), max(0, len(found_s) - count), max(0, count - len(found_s))), []


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--details", action="store_true", help="print every found onset")
    args = parser.parse_args()
    folder = shared_folder()
    if not folder.is_dir():
        print(f"reference captures not present ({folder}): nothing to do")
        return 0
    paths = sorted(folder.glob("*.pcap*")) + sorted((folder / "dev").glob("*.pcap*"))
    totals = {"ours": Score(), "baseline": Score()}
    reviewed_errors: dict[str, list[float]] = {"ours": [], "baseline": []}
    planned_errors: dict[str, list[float]] = {"ours": [], "baseline": []}
    close = 0
    scores = f"{'P':>5} {'R':>5} {'F1':>5}"
    print(f"{'capture':58} {'exp':>3} {'ours':>4} {scores} {'conf min':>8} {'base':>4} {scores}  reference")
    for path in paths:
        device, count, onsets, planned = expected(path)
        view = read_capture([path], device)
        result = detect_activations(view)
        first = view.packets.ts_ns[0]
        ours = np.array([(a.onset_ns - first) / 1e9 for a in result.activations])
        base = (baseline(view) - first) / 1e9
        row = []
        for name, found in (("ours", ours), ("baseline", base)):
            score, errors = score_file(found, count, onsets, planned)
            totals[name].add(score)
            (reviewed_errors if onsets is not None else planned_errors)[name].extend(errors)
            row.append((len(found), *score.prf()))
        spaced = np.diff(ours) < CLOSE_S
        close += int(spaced.sum())
        kind = "reviewed onsets" if onsets is not None else "planned onsets" if planned is not None else "count"
        conf = min((a.confidence for a in result.activations), default=float("nan"))
        (n, p, r, f), (bn, bp, br, bf) = row
        flag = f"  {int(spaced.sum())} closer than {CLOSE_S:.0f} s" if spaced.any() else ""
        ours_prf, base_prf = f"{p:5.2f} {r:5.2f} {f:5.2f}", f"{bp:5.2f} {br:5.2f} {bf:5.2f}"
        print(f"{path.name[:58]:58} {count:3d} {n:4d} {ours_prf} {conf:8.2f} {bn:4d} {base_prf}  {kind}{flag}")
        if args.details:
            print("    ours:", " ".join(f"{t:.2f}" for t in ours), "| baseline:", " ".join(f"{t:.0f}" for t in base))
    print()
    for name, score in totals.items():
        p, r, f = score.prf()
        counts = f"TP {score.tp:4d} FP {score.fp:4d} FN {score.fn:4d}"
        print(f"{name:9} {counts}   precision {p:.3f}  recall {r:.3f}  F1 {f:.3f}")
    for name in totals:
        e = np.abs(reviewed_errors[name])
        if len(e):
            spread = f"median {np.median(e) * 1e3:.0f} ms, max {e.max() * 1e3:.0f} ms"
            print(f"{name:9} onset error on reviewed onsets (n={len(e)}): {spread}")
        d = np.array(planned_errors[name])
        if len(d):
            spread = f"median {np.median(d):+.2f} s, range {d.min():+.2f}..{d.max():+.2f} s"
            print(f"{name:9} onset minus planned second (n={len(d)}): {spread}")
    print(f"activations closer than {CLOSE_S:.0f} s to the previous one (ours): {close}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
