"""How `harness correlate` grows with the number of utterances, on generated runs.

    .venv/bin/python benchmarks/correlate_growth.py [--sizes 10 100 1000 10000] [--dir DIR] [--repeat 1]

Per size it generates a run directory (in a temporary folder, or ``--dir``, where runs already
generated are reused): the event log written with the bench's ``EventLog``, a manifest, and one
classic pcap of an Echo's traffic made with ``harness.net.synth``:

- per utterance (onsets 12-24 s apart, one in ten after a pause of 40-90 s) a voice upload
  shaped like a real request on ONE long-lived TLS connection that predates the capture: an
  opening burst of 20-30 KB within 0.4 s, 500-1000 B records every 50-100 ms for 1.5-2.5 s, the
  server's ACKs, then the answer
  (30-250 KB down, the device ACKing every second segment); 2% of utterances go unheard and
  there are spontaneous wakes (1% of the utterances' number);
- a metrics post on the voice connection 6-9 s after 30% of the answers;
- each utterance's skill (8 skills) contacted 1.5-4 s after 80% of its utterances: a DNS lookup,
  then a new TLS connection (SYN, ClientHello with SNI, a few records);
- background: ten endpoints every 15 s to 10 min with jitter (TLS connections named by SNI, NTP,
  SSDP multicast) and a voice keep-alive every 15 s.

About 280 packets per utterance (2.8 M at 10^4). It then times, on the same files, ``correlate_run``
end to end, the ``harness activations`` command (JSON output, in this process) and, separately,
its two stages ``read_capture`` and ``detect_activations``, and prints two growth tables
(correlate; activations): median seconds (``--repeat``), milliseconds per utterance, and the
log-log slope (fitted exponent) between consecutive sizes. An exponent of 1 is linear. Times are
CPU seconds of this process and of the processes it starts to read a capture in parts (wall
seconds beside them): other engineers share this 2-core
machine, and under their load wall time measures the queue, not the work. It ends
with each command's exponent from 10^2 to the largest size and its time per utterance there
against 10^2 (within 1.2x is the claim). Imports and the lists load once in a warm-up run first.

Before the vectorised attribution (issue 17, measured on the same kind of machine): 10/100/300/
1,000/3,000 utterances took 6/12/30/103/612 s (exponent ~1.6 at the top), 102 of the 158 s at
1,000 utterances in the background probability (a Python loop over every background interval
per endpoint x skill x window length) and 28 s in imports.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import itertools
import math
import resource
import statistics
import struct
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from harness.net import synth

DEVICE, GATEWAY = "192.168.1.20", "192.168.1.1"
DEV_MAC, GW_MAC = "02:00:00:00:01:14", "02:00:00:00:01:01"
VOICE_IP = "52.94.233.10"
START_NS = 1_760_000_000 * 10**9
SKILLS = 8
MSS = 1460
# background endpoints: (name, address, period s, kind)
BACKGROUND = [
    ("device-metrics-us.amazon.com", "54.239.1.10", 15, "tls"),
    ("api.amazonalexa.com", "54.239.1.11", 20, "tls"),
    ("msh.amazon.com", "54.239.1.12", 30, "tls"),
    ("unagi-na.amazon.com", "54.239.1.13", 45, "tls"),
    ("time.example.net", "203.0.113.5", 60, "ntp"),
    ("fireoscaptiveportal.com", "54.239.1.14", 90, "tls"),
    ("softwareupdates.amazon.com", "54.239.1.15", 120, "tls"),
    ("b.scorecardresearch.com", "104.18.1.16", 180, "tls"),
    ("ssdp", "239.255.255.250", 300, "ssdp"),
    ("dcape-na.amazon.com", "54.239.1.17", 600, "tls"),
]
# frame kinds: generic TCP segments are header templates with a payload of zeros
DATA, ACK, SYN, SYNACK = 0x18, 0x10, 0x02, 0x12


@dataclass
class Traffic:
    """Packets as columns while they are generated; ``special`` indexes ``frames`` (built whole)
    or is -1 for a generic TCP segment of connection ``conn``."""

    ts: list[np.ndarray] = field(default_factory=list)
    conn: list[np.ndarray] = field(default_factory=list)
    up: list[np.ndarray] = field(default_factory=list)
    flags: list[np.ndarray] = field(default_factory=list)
    payload: list[np.ndarray] = field(default_factory=list)
    special: list[np.ndarray] = field(default_factory=list)
    frames: list[bytes] = field(default_factory=list)
    conns: list[tuple[int, str, int]] = field(default_factory=list)  # (local port, remote address, remote port)

    def connection(self, remote: str, port: int) -> int:
        self.conns.append((32768 + len(self.conns) % 28000, remote, port))
        return len(self.conns) - 1

    def segments(self, ts: np.ndarray, conn: int, up: bool, payload: np.ndarray, flags: int = DATA) -> None:
        n = len(ts)
        self.ts.append(np.asarray(ts, np.float64))
        self.conn.append(np.full(n, conn, np.int64))
        self.up.append(np.full(n, up, bool))
        self.flags.append(np.full(n, flags, np.int64))
        self.payload.append(np.asarray(payload, np.int64))
        self.special.append(np.full(n, -1, np.int64))

    def whole(self, t: float, conn: int, up: bool, frame: bytes, advance: int = 0) -> None:
        """A packet built whole (ClientHello, DNS, NTP, SSDP); ``advance``: its TCP payload bytes."""
        self.segments(np.array([t]), conn, up, np.array([advance]))
        self.special[-1][:] = len(self.frames)
        self.frames.append(frame)


def _frame(conn: tuple[int, str, int], up: bool, segment: bytes, proto: int = 6) -> bytes:
    local, remote, _ = conn
    if up:
        return synth.ethernet(DEV_MAC, GW_MAC, 0x0800, synth.ipv4(DEVICE, remote, proto, segment))
    return synth.ethernet(GW_MAC, DEV_MAC, 0x0800, synth.ipv4(remote, DEVICE, proto, segment))


def _acked(traffic: Traffic, ts: np.ndarray, conn: int, up: bool, payload: np.ndarray) -> None:
    """Data one way and an ACK back for every second segment, 1 ms later."""
    traffic.segments(ts, conn, up, payload)
    back = ts[1::2] + 0.001
    traffic.segments(back, conn, not up, np.zeros(len(back), np.int64), ACK)


def _bulk(rng: np.random.Generator, start: float, duration: float, size: int) -> tuple[np.ndarray, np.ndarray]:
    """``size`` bytes in full segments spread over ``duration`` s."""
    n = max(1, -(-size // MSS))
    payload = np.full(n, MSS, np.int64)
    payload[-1] = size - MSS * (n - 1)
    return start + np.sort(rng.uniform(0, duration, n)), payload


def _upload(traffic: Traffic, rng: np.random.Generator, voice: int, t: float) -> None:
    """A spoken request: opening burst, speech-rate records, then the answer down."""
    ts, payload = _bulk(rng, t, 0.4, int(rng.integers(20_000, 30_000)))
    stream_end = t + 0.5 + rng.uniform(1.5, 2.5)
    steps = np.cumsum(rng.uniform(0.05, 0.1, 60))
    records = t + 0.5 + steps[t + 0.5 + steps < stream_end]
    ts = np.r_[ts, records]
    payload = np.r_[payload, rng.integers(500, 1000, len(records))]
    _acked(traffic, ts, voice, True, payload)
    answer_ts, answer = _bulk(
        rng, stream_end + rng.uniform(0.3, 0.8), rng.uniform(1.0, 3.0), int(rng.integers(30_000, 250_000))
    )
    _acked(traffic, answer_ts, voice, False, answer)


def _metrics(traffic: Traffic, voice: int, t: float) -> None:
    """Three bursts of full records 0.4 s apart on the voice connection (not a request)."""
    sizes = np.array([287, 190, 1514, 1514, 1514, 965]) - 54
    ts = np.concatenate([t + 0.4 * k + 0.001 * np.arange(len(sizes)) for k in range(3)])
    _acked(traffic, ts, voice, True, np.tile(sizes, 3))


def _tls_contact(traffic: Traffic, rng: np.random.Generator, name: str, address: str, t: float) -> None:
    """A new TLS connection: handshake, ClientHello with SNI, a few records each way."""
    conn = traffic.connection(address, 443)
    c = traffic.conns[conn]
    traffic.segments(np.array([t]), conn, True, np.array([0]), SYN)
    traffic.segments(np.array([t + 0.02]), conn, False, np.array([0]), SYNACK)
    traffic.segments(np.array([t + 0.021]), conn, True, np.array([0]), ACK)
    hello = synth.client_hello(name)
    traffic.whole(t + 0.022, conn, True, _frame(c, True, synth.tcp(c[0], 443, hello, seq=1)), len(hello))
    traffic.segments(t + np.array([0.05, 0.051, 0.052]), conn, False, np.array([MSS, MSS, 800]))
    traffic.segments(t + np.array([0.06, 0.08]), conn, True, rng.integers(300, 1200, 2))
    traffic.segments(t + np.array([0.1, 0.101]), conn, False, rng.integers(200, 800, 2))
    traffic.segments(np.array([t + 0.102]), conn, True, np.array([0]), ACK)


def _lookup(traffic: Traffic, name: str, address: str, t: float) -> None:
    conn = traffic.connection(GATEWAY, 53)
    c = traffic.conns[conn]
    ident = conn & 0xFFFF
    traffic.whole(t, conn, True, _frame(c, True, synth.udp(c[0], 53, synth.dns_query(name, ident)), 17))
    answer = synth.dns_response(name, [(name, "A", address)], ident)
    traffic.whole(t + 0.015, conn, False, _frame(c, False, synth.udp(53, c[0], answer), 17))


def _background(traffic: Traffic, rng: np.random.Generator, end: float) -> None:
    ntp = synth.udp(123, 123, bytes([0x23]) + bytes(47))
    for name, address, period, kind in BACKGROUND:
        t = rng.uniform(0, period)
        while t < end:
            if kind == "tls":
                _tls_contact(traffic, rng, name, address, t)
            elif kind == "ntp":
                c = traffic.conns[conn := traffic.connection(address, 123)]
                traffic.whole(t, conn, True, _frame(c, True, ntp, 17))
                traffic.whole(t + 0.03, conn, False, _frame(c, False, ntp, 17))
            else:
                c = traffic.conns[conn := traffic.connection(address, 1900)]
                traffic.whole(t, conn, True, _frame(c, True, synth.udp(c[0], 1900, b"M-SEARCH * HTTP/1.1\r\n\r\n"), 17))
            t += period * rng.uniform(0.8, 1.2)


def generate(utterances: int, seed: int = 17) -> tuple[Traffic, np.ndarray, np.ndarray]:
    """The traffic of a run of ``utterances`` utterances, their onsets (s from the capture's
    start) and each one's skill."""
    rng = np.random.default_rng(seed)
    traffic = Traffic()
    voice = traffic.connection(VOICE_IP, 443)
    # mostly 12-24 s apart, a pause of 40-90 s before one in ten (background between sessions)
    n = utterances - 1
    gaps = np.where(rng.random(n) < 0.1, rng.uniform(40, 90, n), rng.uniform(12, 24, n))
    onsets = 30.0 + np.cumsum(np.r_[0.0, gaps])
    skills = rng.integers(0, SKILLS, utterances)
    for onset, skill in zip(onsets, skills, strict=False):
        if rng.random() < 0.98:  # the rest go unheard
            _upload(traffic, rng, voice, onset + rng.uniform(0.4, 0.7))
            if rng.random() < 0.3:
                _metrics(traffic, voice, onset + rng.uniform(10, 13))
        if rng.random() < 0.8:
            name, address = f"api.skill{skill}.example.com", f"198.51.100.{skill + 1}"
            t = onset + rng.uniform(1.5, 4.0)
            _lookup(traffic, name, address, t)
            _tls_contact(traffic, rng, name, address, t + 0.03)
    end = float(onsets[-1]) + 30.0
    for t in rng.uniform(onsets[0], end, max(1, utterances // 100)):  # spontaneous wakes
        _upload(traffic, rng, voice, t)
    keep = np.arange(rng.uniform(0, 15), end, 15.0)
    _acked(traffic, keep, voice, True, np.full(len(keep), 66))
    _background(traffic, rng, end)
    return traffic, onsets, skills


def write_pcap(traffic: Traffic, path: Path, chunk: int = 200_000) -> int:
    """Write the packets in time order as a nanosecond pcap; returns the packet count."""
    ts = START_NS + np.round(np.concatenate(traffic.ts) * 1e9).astype(np.int64)
    order = np.argsort(ts, kind="stable")
    ts = ts[order]
    columns = (traffic.conn, traffic.up, traffic.flags, traffic.payload, traffic.special)
    conn, up, flags, payload, special = (np.concatenate(c)[order] for c in columns)
    # a TCP header template per (connection, direction, flags); sequence numbers per direction
    key = (conn * 2 + up) * 256 + flags
    keys, tpl = np.unique(key, return_inverse=True)
    templates = np.stack(
        [
            np.frombuffer(_template(traffic.conns[k // 512], bool(k // 256 % 2), int(k % 256)), np.uint8)
            for k in keys.tolist()
        ]
    )
    direction = conn * 2 + up
    by_dir = np.argsort(direction, kind="stable")
    sent = np.cumsum(payload[by_dir])
    first = np.r_[True, np.diff(direction[by_dir]) != 0]
    base = np.maximum.accumulate(np.where(first, sent - payload[by_dir], 0))
    seq = np.empty(len(ts), np.int64)
    seq[by_dir] = 1 + sent - payload[by_dir] - base
    seq[flags == SYN] = 0
    seq[flags == SYNACK] = 0
    lengths = np.array([len(f) for f in traffic.frames], np.int64)
    with open(path, "wb") as fh:
        fh.write(struct.pack("<IHHiIII", 0xA1B23C4D, 2, 4, 0, 0, 262144, 1))
        for lo in range(0, len(ts), chunk):
            part = slice(lo, min(lo + chunk, len(ts)))
            fh.write(
                _records(
                    ts[part], tpl[part], payload[part], seq[part], special[part], templates, traffic.frames, lengths
                )
            )
    return len(ts)


def _template(conn: tuple[int, str, int], up: bool, flags: int) -> bytes:
    local, _, port = conn
    segment = synth.tcp(local, port, flags=flags) if up else synth.tcp(port, local, flags=flags)
    return _frame(conn, up, segment)


def _records(ts, tpl, payload, seq, special, templates, frames, lengths) -> bytes:  # noqa: ANN001 (columns)
    """pcap records of one chunk: record header, then a template with its lengths and seq patched
    and zeros as payload, or the whole frame."""
    generic = special < 0
    frame = np.where(generic, templates.shape[1] + payload, lengths[np.maximum(special, 0)])
    offset = np.r_[0, np.cumsum(16 + frame)[:-1]]
    out = np.zeros(int((16 + frame).sum()), np.uint8)
    head = np.stack([ts // 10**9, ts % 10**9, frame, frame], axis=1).astype("<u4")
    out[offset[:, None] + np.arange(16)] = head.view(np.uint8).reshape(-1, 16)
    g = offset[generic] + 16
    out[g[:, None] + np.arange(templates.shape[1])] = templates[tpl[generic]]
    total = 40 + payload[generic]  # IPv4 total length
    out[g + 16], out[g + 17] = total >> 8, total & 0xFF
    for i, shift in enumerate((24, 16, 8, 0)):
        out[g + 38 + i] = (seq[generic] >> shift) & 0xFF
    for i in np.flatnonzero(~generic).tolist():
        out[offset[i] + 16 : offset[i] + 16 + frame[i]] = np.frombuffer(frames[special[i]], np.uint8)
    return out.tobytes()


def write_run(folder: Path, utterances: int, seed: int = 17) -> int:
    """A run directory of ``utterances`` utterances in ``folder``; returns its packet count."""
    from harness.bench.record import host_info
    from harness.rundir.events import CaptureFileInfo, EventLog, RunStarted, UtteranceEnded, UtteranceStarted
    from harness.rundir.layout import RunDir
    from harness.rundir.manifest import ClockInfo, ClockStatus, DeviceInfo, Manifest, Settings, write_manifest

    traffic, onsets, skills = generate(utterances, seed)
    run = RunDir(folder)
    run.create(run.capture)
    pcap = run.capture / "capture.pcap"
    packets = write_pcap(traffic, pcap)
    run_id = folder.name
    with EventLog(run.events, run_id) as log:
        log.emit(
            RunStarted(
                harness_version="bench",
                personas=["growth"],
                plan_items=utterances,
                seeds={"growth": seed},
                backend="synthetic",
                output_device="-",
                input_device=None,
                marker=None,
            )
        )
        for i, (onset, skill) in enumerate(zip(onsets.tolist(), skills.tolist(), strict=False)):
            ref = {
                "plan_index": i,
                "persona_id": "growth",
                "skill_id": f"skill{skill}",
                "utterance_id": f"skill{skill}/{i}",
            }
            started = log.emit(
                UtteranceStarted(
                    **ref,
                    skill_name=f"Skill {skill}",
                    text=f"Alexa, ask skill {skill}",
                    audio_path="speech/x.wav",
                    audio_sha256="0" * 64,
                    duration_s=1.5,
                    cache_hit=True,
                    device="-",
                )
            )
            onset_ns = START_NS + round(onset * 1e9)
            log.emit(
                UtteranceEnded(
                    **ref,
                    started_seq=started.seq,
                    onset_wall_ns=onset_ns,
                    end_wall_ns=onset_ns + 1_500_000_000,
                    onset_mono_ns=0,
                    end_mono_ns=1_500_000_000,
                    latency_s=0.0,
                    device="-",
                    sample_rate=22050,
                    frames=33075,
                    backend="synthetic",
                )
            )
    settings = Settings(
        retries=None,
        marker=None,
        transcribe=False,
        capture=None,
        capture_device=DEVICE,
        capture_tail_s=0.0,
        device_wait_s=1.0,
    )
    write_manifest(
        run,
        Manifest(
            run_id=run_id,
            status="finished",
            created_wall_ns=START_NS,
            updated_wall_ns=START_NS,
            host=host_info(),
            versions={},
            scripts=[],
            plan=[f"growth:skill{s}/{i}" for i, s in enumerate(skills.tolist())],
            backend="synthetic",
            output_device=DeviceInfo(spec="-", name="-"),
            input_device=None,
            settings=settings,
            clock=ClockInfo(status=ClockStatus(source="unknown")),
            captures=[CaptureFileInfo(path=run.relative(pcap), bytes=pcap.stat().st_size, interface="synthetic")],
        ),
    )
    (folder / ".packets").write_text(f"{packets}\n")
    return packets


def _cpu() -> float:
    """CPU seconds of this process and of its finished children (the processes reading a large
    capture in parts are reaped when their reading ends)."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


def time_run(folder: Path) -> dict[str, float]:
    """CPU seconds (``<stage>_wall``: wall seconds) of ``correlate_run`` end to end, of the
    ``harness activations`` command (JSON output, in this process), then of ``read_capture`` and
    ``detect_activations`` alone."""
    from harness.cli.main import main as cli
    from harness.correlate import correlate_run, detect_activations, read_capture
    from harness.rundir.layout import RunDir
    from harness.rundir.manifest import read_manifest

    run = RunDir.existing(folder)
    pcaps = [str(run.resolve(c.path)) for c in read_manifest(run).captures]
    clocks = [(time.perf_counter(), _cpu())]
    correlate_run(folder)
    clocks.append((time.perf_counter(), _cpu()))
    with contextlib.redirect_stdout(io.StringIO()):
        status = cli(["activations", *pcaps, "--device", DEVICE, "--format", "json"])
    clocks.append((time.perf_counter(), _cpu()))
    if status:
        raise SystemExit(f"harness activations failed on {folder} ({status})")
    view = read_capture(pcaps, DEVICE)
    clocks.append((time.perf_counter(), _cpu()))
    found = detect_activations(view)
    clocks.append((time.perf_counter(), _cpu()))
    out: dict[str, float] = {"activations": len(found.activations)}
    for i, stage in enumerate(("correlate", "command", "read", "detect")):
        out[stage] = clocks[i + 1][1] - clocks[i][1]
        out[stage + "_wall"] = clocks[i + 1][0] - clocks[i][0]
    return out


def slope(sizes: list[int], seconds: list[float]) -> list[str]:
    """Log-log slope between consecutive sizes (blank for the first)."""
    out = [""]
    for (n0, t0), (n1, t1) in itertools.pairwise(zip(sizes, seconds, strict=True)):
        out.append(f"{math.log(t1 / t0) / math.log(n1 / n0):.2f}")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 100, 1000, 10000])
    parser.add_argument("--dir", type=Path, help="keep generated runs here (reused when present)")
    parser.add_argument("--repeat", type=int, default=1, help="timings per size (medians are printed)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="growth-") as scratch:
        base = args.dir or Path(scratch)
        rows = []
        warm = base / "growth-warm-up"
        if not (warm / ".packets").is_file():
            write_run(warm, 10, seed=1)
        time_run(warm)  # imports and the classifier's lists load once, outside every timing
        for n in args.sizes:
            folder = base / f"growth-{n}"
            if not (folder / ".packets").is_file():
                t = time.perf_counter()
                write_run(folder, n)
                print(f"generated {folder.name} in {time.perf_counter() - t:.1f} s", flush=True)
            packets = int((folder / ".packets").read_text())
            runs = [time_run(folder) for _ in range(args.repeat)]
            row = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
            rows.append((n, packets, row))
            print(
                f"{n} utterances, {packets:,} packets (CPU s; wall s): correlate {row['correlate']:.2f}; "
                f"{row['correlate_wall']:.2f}, activations {row['command']:.2f}; {row['command_wall']:.2f}, read "
                f"{row['read']:.2f}, detect {row['detect']:.3f}; {row['activations']:.0f} activations",
                flush=True,
            )
    sizes = [n for n, _, _ in rows]
    stages = ("correlate", "command", "read", "detect")
    slopes = {s: slope(sizes, [r[s] for _, _, r in rows]) for s in stages}
    print("\n`harness correlate` (correlate_run end to end)")
    print("| utterances | packets | correlate CPU s | wall s | ms/utt | exp |")
    print("|---|---|---|---|---|---|")
    for i, (n, packets, r) in enumerate(rows):
        per = 1000 * r["correlate"] / n
        print(
            f"| {n:,} | {packets:,} | {r['correlate']:.2f} | {r['correlate_wall']:.2f} | {per:.1f} "
            f"| {slopes['correlate'][i]} |"
        )
    print("\n`harness activations` (the command, JSON output; then its two stages alone)")
    print(
        "| utterances | packets | activations CPU s | wall s | ms/utt | exp | read_capture s | exp "
        "| detect_activations s | exp |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for i, (n, packets, r) in enumerate(rows):
        per = 1000 * r["command"] / n
        print(
            f"| {n:,} | {packets:,} | {r['command']:.2f} | {r['command_wall']:.2f} | {per:.1f} "
            f"| {slopes['command'][i]} "
            f"| {r['read']:.2f} | {slopes['read'][i]} | {r['detect']:.3f} | {slopes['detect'][i]} |"
        )
    # the claim: within 1.2x of linear from 10^2 utterances up (10 utterances is mostly fixed cost)
    span = [(n, r) for n, _, r in rows if n >= 100] or [(n, r) for n, _, r in rows]
    if len(span) > 1:
        (n0, r0), (n1, r1) = span[0], span[-1]
        print()
        for stage, label in (("correlate", "correlate"), ("command", "activations")):
            exponent = math.log(r1[stage] / r0[stage]) / math.log(n1 / n0)
            growth = (r1[stage] / n1) / (r0[stage] / n0)
            verdict = "within" if growth <= 1.2 else "NOT within"
            print(
                f"{label}: fitted exponent {exponent:.2f} from {n0:,} to {n1:,} utterances; time per utterance "
                f"x{growth:.2f} ({verdict} 1.2x of linear)"
            )


if __name__ == "__main__":
    main()
