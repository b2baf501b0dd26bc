"""How `harness campaign analyse` grows with the campaign's packets, on 1 core and on all cores.

    .venv/bin/python benchmarks/campaign_scale.py [--packets 1e6 1e7 1e8] [--repeat 3 3 1] [--dir DIR] [--keep]

Method. Per size it generates a campaign of four run directories (two personas, two runs each)
shaped like a bench-month (10^8 packets for 10^4 utterances: 10^4 packets per utterance): each
run is ``correlate_growth.write_run`` (an Echo's traffic made with ``harness.net.synth``: voice
uploads, answers, skill contacts, background; ~286 packets per utterance) for its share of the
utterances, plus a second capture file of the same span holding the rest of its packets as a
long audio stream (data down, an ACK up every second segment; 100-byte payloads to keep the
disk use near 170 bytes a packet: the analysis's cost is per packet, not per byte). The runs
are generated in a temporary folder (or ``--dir``, reused there) and deleted at the end unless
``--keep``. It then times the whole ``dataset.update`` (the command's work: a Dask cluster
started, every run's captures read once, correlated, flows classified, every partition written)
with a local cluster of 1 worker and of one worker per core, alternating the two in each repeat
(paired runs), every run's ``analysis/`` deleted before each timing so each one correlates from
the captures. Peak memory is the largest sum of resident memory over the benchmark process and
its workers, sampled every 0.1 s. It prints medians, packets/s, the speed-up of all cores over
one, and the log-log exponent of time against packets between sizes (1 = linear), then
gives the bench-month of 10^8 packets: measured when 10^8 is among the sizes (about 17 GB of
disk; ``--keep`` keeps the runs for the next time), else extrapolated, with several sizes along a
line fitted to them (a fixed cost plus a cost per packet), with one size proportionally (which
counts the fixed cost of starting the cluster a hundred times over, so it overestimates).

Other processes share the machine's cores while this runs unless it is quiet: the table shows
medians for that reason (and each size's fastest timings are printed as it goes, the closest to
the uncontended cost); a quiet machine should rerun it.
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from correlate_growth import START_NS, Traffic, _acked, _frame, write_pcap, write_run
from peak import PeakMemory

from harness.campaign import dataset, manifest
from harness.campaign.engine import Engine
from harness.net import synth
from harness.rundir.events import CaptureFileInfo, UtteranceEnded, read_events
from harness.rundir.layout import RunDir
from harness.rundir.manifest import read_manifest, write_manifest

PACKETS_PER_UTTERANCE = 10_000  # a bench-month: 10^8 packets, 10^4 utterances
STREAM = "203.0.113.50"  # the audio stream's server
RUNS = [("persona-a", 0), ("persona-a", 1), ("persona-b", 0), ("persona-b", 1)]
TARGET_S = 600.0  # a bench-month must analyse in under 10 minutes


def build_campaign(base: Path, packets: int) -> tuple[manifest.CampaignDir, int]:
    """The campaign's runs (reused when present) and its folder; returns the real packet count."""
    share = packets // len(RUNS)
    utterances = max(1, round(share / PACKETS_PER_UTTERANCE))
    total = 0
    runs = []
    for i, (persona, n) in enumerate(RUNS):
        folder = base / f"run-{persona}-{n}"
        if not (folder / ".total").is_file():
            shutil.rmtree(folder, ignore_errors=True)
            t = time.perf_counter()
            spoken = write_run(folder, utterances, seed=100 + i)
            streamed = add_stream(folder, share - spoken, np.random.default_rng(i))
            (folder / ".total").write_text(f"{spoken + streamed}\n")
            print(f"  generated {folder.name} in {time.perf_counter() - t:.0f} s", flush=True)
        total += int((folder / ".total").read_text())
        runs.append((persona, folder))
    root = base / "campaign"
    shutil.rmtree(root, ignore_errors=True)
    folder = manifest.init_campaign(root)
    _, campaign = manifest.load(root)
    for persona, run in runs:
        manifest.add_source(folder, campaign, persona, "run", run)
    manifest.save(folder, campaign)
    return folder, total


def add_stream(folder: Path, packets: int, rng: np.random.Generator) -> int:
    """A second capture file over the run's span: an audio stream of about ``packets`` packets."""
    run = RunDir(folder)
    last = max(e.end_wall_ns for e in read_events(run.events).events if isinstance(e, UtteranceEnded))
    span_s = (last - START_NS) / 1e9 + 30.0
    segments = max(1, packets * 2 // 3)  # each second segment is ACKed
    traffic = Traffic()
    stream = traffic.connection(STREAM, 443)
    hello = synth.tcp(traffic.conns[stream][0], 443, synth.client_hello("audio.stream.example.com"))
    traffic.whole(0.0, stream, True, _frame(traffic.conns[stream], True, hello), advance=len(hello) - 20)
    _acked(traffic, np.sort(rng.uniform(0.0, span_s, segments)), stream, False, np.full(segments, 100))
    pcap = run.capture / "stream.pcap"
    written = write_pcap(traffic, pcap)
    manifest = read_manifest(run)
    entry = CaptureFileInfo(path=run.relative(pcap), bytes=pcap.stat().st_size, interface="synthetic")
    write_manifest(run, manifest.model_copy(update={"captures": [*manifest.captures, entry]}))
    return written


def time_update(folder: manifest.CampaignDir, workers: int) -> tuple[float, int]:
    _, campaign = manifest.load(folder.root)
    for persona in campaign.personas:
        for run in persona.runs:
            shutil.rmtree(Path(run) / "analysis", ignore_errors=True)
    with PeakMemory() as memory:
        t = time.perf_counter()
        result = dataset.update(folder, campaign, Engine(workers=workers), force=True)
        seconds = time.perf_counter() - t
    if result.failed:
        raise SystemExit(f"failed partitions: {result.failed}")
    return seconds, memory.peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--packets", type=float, nargs="+", default=[1e6, 1e7])
    parser.add_argument(
        "--repeat",
        type=int,
        nargs="+",
        default=[3],
        help="paired timings per size (medians printed); one per size or one for all",
    )
    parser.add_argument("--dir", type=Path, help="generate here (default: a temporary folder)")
    parser.add_argument("--keep", action="store_true", help="keep the generated runs")
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    base = args.dir or Path(tempfile.mkdtemp(prefix="campaign-scale-"))
    repeats = args.repeat * len(args.packets) if len(args.repeat) == 1 else args.repeat
    if len(repeats) != len(args.packets):
        parser.error("--repeat takes one count, or one per size")
    rows = []
    try:
        for target, repeat in zip(args.packets, repeats, strict=True):
            size_dir = base / f"p{int(target)}"
            print(f"{int(target):,} packets:", flush=True)
            folder, packets = build_campaign(size_dir, int(target))
            timings: dict[int, list[float]] = {1: [], cores: []}
            peaks: dict[int, list[int]] = {1: [], cores: []}
            for r in range(repeat):
                order = (1, cores) if r % 2 == 0 else (cores, 1)
                for workers in order:
                    seconds, peak = time_update(folder, workers)
                    timings[workers].append(seconds)
                    peaks[workers].append(peak)
                    print(f"  {workers} worker(s): {seconds:.1f} s, peak {peak / 2**20:.0f} MiB", flush=True)
            rows.append((packets, {w: statistics.median(t) for w, t in timings.items()}, peaks))
            fastest = {w: min(t) for w, t in timings.items()}
            print(f"  fastest: 1 worker {fastest[1]:.1f} s, {cores} workers {fastest[cores]:.1f} s", flush=True)
            if not args.keep:
                shutil.rmtree(size_dir)
    finally:
        if not args.keep and not args.dir:
            shutil.rmtree(base, ignore_errors=True)
    head = (
        f"| packets | 1 core s | {cores} cores s | speed-up | packets/s ({cores} cores) | peak MiB 1 / {cores} | exp |"
    )
    print("\n" + head)
    print("|---|---|---|---|---|---|---|")
    previous = None
    for packets, median, peaks in rows:
        exponent = ""
        if previous is not None:
            exponent = f"{math.log(median[cores] / previous[1]) / math.log(packets / previous[0]):.2f}"
        print(
            f"| {packets:,} | {median[1]:.1f} | {median[cores]:.1f} | {median[1] / median[cores]:.2f} "
            f"| {packets / median[cores]:,.0f} | {max(peaks[1]) / 2**20:.0f} / {max(peaks[cores]) / 2**20:.0f} "
            f"| {exponent} |"
        )
        previous = (packets, median[cores])
    measured = [r for r in rows if r[0] >= 0.99e8]
    if measured:
        packets, median, _ = measured[0]
        month, how = median[cores], f"measured at {packets:,} packets"
    else:
        packets, median, _ = rows[-1]
        month, how = median[cores] * 1e8 / packets, f"extrapolated proportionally from {packets:,} packets"
        if len(rows) > 1:  # a fixed cost (cluster start, imports) plus a cost per packet, fitted to the sizes
            slope, fixed = np.polyfit([r[0] for r in rows], [r[1][cores] for r in rows], 1)
            month, how = fixed + slope * 1e8, f"extrapolated from a line fitted to the sizes (fixed {fixed:.0f} s)"
    verdict = "under" if month < TARGET_S else "over"
    print(
        f"\n{how}: a bench-month of 10^8 packets and 10^4 utterances takes {month:.0f} s on {cores} cores "
        f"({verdict} the {TARGET_S:.0f} s target)."
    )


if __name__ == "__main__":
    main()
