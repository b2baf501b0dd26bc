"""Synthetic run directories for the campaign tests: a real pcap written with harness.net.synth,
the event log with the bench's own EventLog and a manifest, with every number a test checks
kept as plain bookkeeping beside them (what was written, not what the code under test reads)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from harness.bench.record import host_info
from harness.net import synth
from harness.rundir.events import (
    AnswerHeard,
    CaptureFileInfo,
    DeviceLost,
    EventLog,
    RunFinished,
    RunStarted,
    UtteranceEnded,
    UtteranceStarted,
)
from harness.rundir.layout import RunDir
from harness.rundir.manifest import ClockInfo, ClockStatus, DeviceInfo, Manifest, Settings, write_manifest

DEVICE, GATEWAY = "192.168.7.2", "192.168.7.1"
DEV_MAC, GW_MAC = "02:00:00:00:07:02", "02:00:00:00:07:01"
SPACING_S = 60  # seconds between onsets
CONTACT_LAG_S = 2  # a skill's contact after its utterance's onset
BACKGROUND = ("b.scorecardresearch.com", "104.18.9.9", 37)  # every persona's Echo, every 37 s
ADDRESSES = {"pubads.g.doubleclick.net": "142.250.1.1", "api.lovematch.io": "203.0.113.77"}


@dataclass
class Written:
    """What a generated run holds, counted while it was written."""

    path: Path
    onsets_ns: list[int] = field(default_factory=list)
    answered: int = 0
    flows: int = 0
    captured_ns: tuple[int, int] = (0, 0)
    names: set[str] = field(default_factory=set)


def _contact(frames: list, t_ns: int, name: str, address: str, port: int) -> None:
    """A TLS connection named by its ClientHello, and one record back."""
    up = synth.ethernet(
        DEV_MAC, GW_MAC, 0x0800, synth.ipv4(DEVICE, address, 6, synth.tcp(port, 443, synth.client_hello(name)))
    )
    down = synth.ethernet(GW_MAC, DEV_MAC, 0x0800, synth.ipv4(address, DEVICE, 6, synth.tcp(443, port, bytes(300))))
    frames += [(t_ns, up), (t_ns + 20_000_000, down)]


def write_run(
    folder: Path,
    persona: str,
    start_ns: int,
    skills: list[tuple[str, str | None]],
    answered: list[bool],
    finished: bool = True,
    device_lost: bool = False,
    files: int = 1,
) -> Written:
    """A run of one utterance per ``skills`` entry ``(skill_id, name it contacts or None)``, one
    every 60 s from ``start_ns`` + 60 s; ``answered[i]``: the i-th got an answer. The capture is
    ``files`` files, one after the other in time."""
    run = RunDir(folder)
    run.create(run.capture)
    written = Written(folder)
    frames: list[tuple[int, bytes]] = []
    port = 40000
    end_ns = start_ns + (len(skills) + 1) * SPACING_S * 10**9
    name, address, period = BACKGROUND
    for t in range(start_ns + 5 * 10**9, end_ns, period * 10**9):
        _contact(frames, t, name, address, port)
        port += 1
        written.flows += 1
        written.names.add(name)
    for i, (_, contact) in enumerate(skills):
        onset = start_ns + (i + 1) * SPACING_S * 10**9
        written.onsets_ns.append(onset)
        if contact:
            _contact(frames, onset + CONTACT_LAG_S * 10**9, contact, ADDRESSES[contact], port)
            port += 1
            written.flows += 1
            written.names.add(contact)
    frames.sort(key=lambda f: f[0])
    pcaps = [run.capture / ("capture.pcap" if i == 0 else f"capture-{i}.pcap") for i in range(files)]
    for i, pcap in enumerate(pcaps):
        pcap.write_bytes(synth.pcap_bytes(frames[len(frames) * i // files : len(frames) * (i + 1) // files]))
    written.captured_ns = (start_ns, end_ns)
    run_id = folder.name
    with EventLog(run.events, run_id) as log:
        log.emit(
            RunStarted(
                harness_version="test", personas=[persona], plan_items=len(skills), seeds={persona: 1},
                backend="synthetic", output_device="-", input_device=None, marker=None,
            )
        )  # fmt: skip
        for i, ((skill, _), onset) in enumerate(zip(skills, written.onsets_ns, strict=True)):
            ref = {"plan_index": i, "persona_id": persona, "skill_id": skill, "utterance_id": f"{skill}/{i}"}
            started = log.emit(
                UtteranceStarted(
                    **ref, skill_name=skill.title(), text=f"Alexa, ask {skill}", audio_path="speech/x.wav",
                    audio_sha256="0" * 64, duration_s=1.5, cache_hit=True, device="-",
                )
            )  # fmt: skip
            log.emit(
                UtteranceEnded(
                    **ref, started_seq=started.seq, onset_wall_ns=onset, end_wall_ns=onset + 1_500_000_000,
                    onset_mono_ns=0, end_mono_ns=1_500_000_000, latency_s=0.0, device="-", sample_rate=22050,
                    frames=33075, backend="synthetic",
                )
            )  # fmt: skip
            if answered[i]:
                written.answered += 1
                log.emit(
                    AnswerHeard(
                        **ref, started_seq=started.seq, onset_wall_ns=onset + 3 * 10**9,
                        end_wall_ns=onset + 5 * 10**9, duration_s=2.0, listen_started_wall_ns=onset,
                        onset_index=0, end_index=1, too_long=False, same_as_previous=False, path="answers/x.wav",
                        sha256="0" * 64, sample_rate=16000,
                    )
                )  # fmt: skip
            if device_lost and i == len(skills) // 2:
                log.emit(DeviceLost(kind="output", device="-", message="unplugged", plan_index=i))
        if finished:
            log.emit(RunFinished(items_completed=len(skills), answers=written.answered, no_answers=0))
    settings = Settings(
        retries=None, marker=None, transcribe=False, capture=None, capture_device=DEVICE, capture_tail_s=0.0,
        device_wait_s=1.0,
    )  # fmt: skip
    captures = [
        CaptureFileInfo(
            path=run.relative(pcap), state="closed", bytes=pcap.stat().st_size, started_ns=start_ns, stopped_ns=end_ns
        )
        for pcap in pcaps
    ]
    write_manifest(
        run,
        Manifest(
            run_id=run_id, status="finished" if finished else "interrupted", created_wall_ns=start_ns,
            updated_wall_ns=end_ns, host=host_info(), versions={}, scripts=[],
            plan=[f"{persona}:{s}/{i}" for i, (s, _) in enumerate(skills)], backend="synthetic",
            output_device=DeviceInfo(spec="-", name="-"), input_device=None, settings=settings,
            clock=ClockInfo(status=ClockStatus(source="unknown")), captures=captures,
        ),
    )  # fmt: skip
    return written
