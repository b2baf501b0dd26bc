"""The simulated Echo: hears the bench, answers it, talks to its loopback Internet, logs the truth.

Threads: the ear (audio + recognition), one responder per request (voice upload, skill
endpoints, the spoken answer), the background scheduler, and the servers. Everything the twin
does is written to the truth log as it happens.
"""

from __future__ import annotations

import hashlib
import heapq
import random
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from harness.audio import open_backend, resolve_device
from harness.script import BUILTIN_SKILL_ID, Persona, SpeechSettings, spoken_text
from harness.speech import synthesize, synthesize_many
from harness.defaults import default
from harness.rundir import truth
from harness.rundir.truth import Cause, TruthLog
from harness.twin.client import Flow, Network, TlsSession
from harness.twin.config import Reply, TwinConfig
from harness.twin.ear import Ear, Heard, Wake
from harness.twin.grammar import Catalogue, Request
from harness.twin.mouth import Mouth
from harness.twin.servers import AddressBook, Servers
from harness.twin.wire import Wire
from harness.wav import read_wav

EAR_DEVICE = default.lab_output_monitor
MOUTH_DEVICE = default.lab_answer_output
LONG_ANSWER_PAUSE_S = 0.5



@dataclass
class _Turn:
    """One request in progress: its voice upload and what it was heard as."""

    wake: Wake | None
    voice: TlsSession | None
    uploading: threading.Event
    upload_thread: threading.Thread | None = None
    seq: int | None = None


def vendor_name(template: str, skill_id: str) -> str:
    """An endpoint template with ``{skill}`` filled (ids may hold '_', host names may not)."""
    return template.format(skill=skill_id.replace("_", "-"))


class Twin:
    """One simulated speaker. :meth:`start`, then :meth:`stop` (the truth is complete after it)."""

    def __init__(self, personas: list[Persona], config: TwinConfig, truth_path: Path, work_dir: Path,
                 backend: str = default.backend, ear_device: str = EAR_DEVICE, mouth_device: str = MOUTH_DEVICE,
                 synthetic_capture: Path | None = None, config_path: Path | None = None) -> None:  # fmt: skip
        self.config = config
        self.personas = personas
        self.rng = random.Random(config.seed)
        self._rng_lock = threading.Lock()
        self.catalogue = Catalogue(personas, config.answers.builtins, config.hearing.wake_word)
        self.truth = TruthLog(truth_path)
        self.work_dir = work_dir
        self.synthetic_capture = synthetic_capture
        self.config_path = config_path
        self.backend_name, self.ear_device, self.mouth_device = backend, ear_device, mouth_device
        self.skills = {s.id: s for p in personas for s in p.skills}
        self._stop = threading.Event()
        self._turn: _Turn | None = None
        self._missed: Wake | None = None
        self._answering: threading.Thread | None = None
        self._threads: list[threading.Thread] = []
        self._keepalive: dict[str, TlsSession] = {}
        self._lock = threading.Lock()

    # ----- set-up ------------------------------------------------------------------------------

    def _skill_endpoints(self) -> list[str]:
        names = []
        for skill_id in self.skills:
            names += [vendor_name(e.name, skill_id) for e in self.config.skill(skill_id).endpoints or []]
        return names

    def start(self) -> None:
        cfg = self.config
        book = AddressBook(cfg.network.platform_pool, cfg.network.vendor_pool, cfg.network.platform_domains)
        tls_names = [cfg.voice.endpoint, *([cfg.voice.metrics_endpoint] if cfg.voice.metrics_endpoint else [])]
        tls_names += self._skill_endpoints() + [b.name for b in cfg.background if b.kind != "ntp"]
        ntp_names = [b.name for b in cfg.background if b.kind == "ntp"]
        tls_names = list(dict.fromkeys(tls_names))
        self.servers = Servers(book, cfg.network.resolver, self.work_dir)
        self.servers.start(tls_names, ntp_names)
        self.wire = Wire() if self.synthetic_capture else None
        self.net = Network(cfg.network.device, self.servers, self._flow, self.wire)
        self._prepare_answers()
        backend = open_backend(self.backend_name)
        self.mouth = Mouth(backend, resolve_device(self.mouth_device, "output", self.backend_name))
        self.ear = Ear(backend, resolve_device(self.ear_device, "input", self.backend_name), self.catalogue,
                       cfg.hearing, self._on_wake, self._on_heard)  # fmt: skip
        for persona in self.personas:
            first = next((u.text for s in persona.skills for u in s.utterances), None)
            if first is not None:
                spoken = synthesize(spoken_text(first, persona.speech.wake_word), persona.speech)
                self.ear.prime(*read_wav(spoken.path))
        self.truth.write(truth.TwinStarted(
            device=cfg.network.device, resolver=f"{cfg.network.resolver}:{self.servers.ports['dns']}",
            ports=self.servers.ports, addresses=dict(book.addresses), seed=cfg.seed,
            config=str(self.config_path) if self.config_path else "default",
            config_sha256=hashlib.sha256(cfg.model_dump_json().encode()).hexdigest(),
            personas=[p.persona.id for p in self.personas], requests=len(self.catalogue.requests),
            ear_device=self.ear.device.name, ear_rate=self.ear.rate, mouth_device=self.mouth.device.name,
            capture="synthetic" if self.synthetic_capture else "external",
            synthetic_capture=str(self.synthetic_capture) if self.synthetic_capture else None,
        ))  # fmt: skip
        self.ear.start()
        if not self.ear.ready.wait(10) or self.ear.error is not None:
            raise RuntimeError(f"the twin's ear did not start: {self.ear.error}")
        self._spawn(self._background, "twin-background")

    def _prepare_answers(self) -> None:
        """Synthesise every possible answer up front, so answering costs no synthesis time."""
        answers = self.config.answers
        settings = SpeechSettings(engine=answers.engine, voice=answers.voice, rate=answers.rate)
        replies = {text: self._reply(self.catalogue.requests[text]) for text in self.catalogue.requests}
        replies[""] = Reply(text=answers.unknown)
        texts = sorted({r.text for r in replies.values()})
        done = synthesize_many([(t, settings) for t in texts])
        sounds = {t: read_wav(s.path) for t, s in zip(texts, done, strict=True)}
        self.answers: dict[str, tuple[np.ndarray, int, str]] = {}
        for key, reply in replies.items():
            samples, rate = sounds[reply.text]
            if reply.seconds:
                gap = np.zeros(int(LONG_ANSWER_PAUSE_S * rate), np.float32)
                unit = np.concatenate([samples, gap])
                samples = np.tile(unit, int(np.ceil(reply.seconds * rate / len(unit))))
            self.answers[key] = (samples, rate, reply.text)

    def _reply(self, request: Request) -> Reply:
        answers = self.config.answers
        if request.skill_id == BUILTIN_SKILL_ID:
            reply = answers.builtins.get(request.text) or Reply(text=answers.unknown)
        else:
            skill = self.config.skill(request.skill_id)
            reply = skill.replies.get(request.text) or skill.answer or answers.skill_answer
        text = reply.text.replace("{request}", request.text).replace("{skill}", request.skill_name)
        return Reply(text=text, seconds=reply.seconds)

    # ----- stopping ----------------------------------------------------------------------------

    def stop(self) -> None:
        self._stop.set()
        self.mouth.stop.set()
        self.ear.stop()
        turn, self._turn = self._turn, None
        if turn is not None:  # a request cut off by the stop: end its upload so its flow is logged
            self._finish_upload(turn, 0.0)
        deadline = time.monotonic() + 15
        for thread in list(self._threads):
            thread.join(max(0.1, deadline - time.monotonic()))
        for session in self._keepalive.values():
            session.close()
        self.servers.stop()
        if self.wire is not None and self.synthetic_capture is not None:
            self.wire.write(self.synthetic_capture)
        self.truth.write(truth.TwinStopped(ear_error=repr(self.ear.error) if self.ear.error else None,
                                           synthetic_packets=len(self.wire) if self.wire is not None else None))  # fmt: skip
        self.truth.close()

    def _spawn(self, target, name: str, *args) -> threading.Thread:
        thread = threading.Thread(target=target, args=args, daemon=True, name=name)
        with self._lock:
            self._threads = [t for t in self._threads if t.is_alive()] + [thread]
        thread.start()
        return thread

    def _chance(self, p: float) -> bool:
        with self._rng_lock:
            return p > 0 and self.rng.random() < p

    def _uniform(self, lo: float, hi: float) -> float:
        with self._rng_lock:
            return self.rng.uniform(lo, hi)

    def _flow(self, flow: Flow) -> None:
        self.truth.write(flow.record())

    # ----- hearing -----------------------------------------------------------------------------

    def _on_wake(self, wake: Wake) -> None:
        if self._chance(self.config.failures.missed_wake):
            self._missed = wake
            self.truth.write(truth.Failure(kind="missed_wake", wake_wall_ns=wake.wall_ns))
            return
        seq = self.truth.write(truth.Wake(wall_ns=wake.wall_ns, noticed_ns=wake.noticed_ns,
                                          segment_onset_ns=wake.segment_onset_ns, while_answering=self._is_answering()))  # fmt: skip
        self.mouth.ducked.set()
        self._turn = self._open_turn(wake, Cause(kind="request", request_seq=seq))

    def _is_answering(self) -> bool:
        return self._answering is not None and self._answering.is_alive()

    def _open_turn(self, wake: Wake | None, cause: Cause) -> _Turn:
        """Open the voice connection and stream the speech up while it is being heard."""
        turn = _Turn(wake, None, threading.Event())
        turn.uploading.set()
        turn.seq = cause.request_seq
        turn.upload_thread = self._spawn(self._upload, "twin-upload", turn, cause)
        return turn

    def _upload(self, turn: _Turn, cause: Cause) -> None:
        voice = self.config.voice
        turn.voice = self.net.connect(voice.endpoint, cause, "voice")
        chunk = max(1, int(voice.upload_bytes_per_s * voice.chunk_s))
        while turn.uploading.is_set() and turn.voice is not None and not self._stop.is_set():
            turn.voice.exchange(chunk, 0)
            time.sleep(voice.chunk_s)

    def _on_heard(self, heard: Heard) -> None:
        if heard.wake is not None and heard.wake is self._missed:
            return
        turn = self._turn if heard.wake is not None else None
        self._turn = None
        if turn is None:  # a follow-up without the wake word: the mic was open
            seq = self.truth.write(truth.Wake(wall_ns=None, noticed_ns=None, segment_onset_ns=heard.onset_ns,
                                              while_answering=self._is_answering(), follow_up=True))  # fmt: skip
            turn = self._open_turn(None, Cause(kind="request", request_seq=seq))
        request = self.catalogue.match(heard.hypothesis)
        outcome = "matched" if request else "unknown"
        if request is not None and self._chance(self.config.failures.misheard):
            with self._rng_lock:
                request = self.rng.choice([r for r in self.catalogue.requests.values() if r is not request])
            outcome = "misheard"
        self.truth.write(truth.Request(
            wake_seq=turn.seq, hypothesis=heard.hypothesis, outcome=outcome,
            text=request.text if request else None, skill_id=request.skill_id if request else None,
            utterance_id=request.utterance_id if request else None, onset_ns=heard.onset_ns, end_ns=heard.end_ns,
            decode_s=round(heard.decode_s, 3),
        ))  # fmt: skip
        self.mouth.ducked.clear()
        self._spawn(self._respond, "twin-respond", turn, heard, request)

    # ----- answering ---------------------------------------------------------------------------

    def _respond(self, turn: _Turn, heard: Heard, request: Request | None) -> None:
        cfg = self.config
        cause = Cause(kind="request", request_seq=turn.seq, utterance_id=request.utterance_id if request else None,
                      skill_id=request.skill_id if request else None)  # fmt: skip
        samples, rate, text = self.answers[request.text if request else ""]
        self.mouth.stop.set()  # a new request (or "stop") ends the current answer at once
        if self._answering is not None:
            self._answering.join(5)
        self.mouth.stop.clear()
        speak = not (request is not None and request.is_stop)
        if speak and self._chance(cfg.failures.no_answer):
            self.truth.write(truth.Failure(kind="no_answer", request_seq=turn.seq))
            speak = False
        answer_s = len(samples) / rate if speak else 0.0
        self._finish_upload(turn, answer_s)
        if request is not None and request.skill_id != BUILTIN_SKILL_ID:
            self._contact_skill(request, cause)
        if cfg.voice.metrics_endpoint:
            self._spawn(self._session, "twin-metrics", cfg.voice.metrics_endpoint, cause, "metrics", 900, 200, 1.0)
        if not speak:
            return
        delay = self._uniform(*cfg.answers.delay_s)
        wait = (heard.end_ns + int(delay * 1e9) - time.time_ns()) / 1e9
        if wait > 0 and self._stop.wait(wait):
            return
        self._answering = threading.current_thread()
        spoken = self.mouth.say(samples, rate)
        self.truth.write(truth.Answer(
            request_seq=turn.seq, text=text, onset_wall_ns=spoken.onset_wall_ns,
            end_wall_ns=spoken.end_wall_ns, cut=spoken.cut, seconds=round(spoken.seconds_played, 3),
            planned_seconds=round(len(samples) / rate, 3), delay_s=round(delay, 3), device=self.mouth.device.name,
        ))  # fmt: skip
        if request is not None and request.has_follow_ups and not spoken.cut:
            self.ear.open_mic(cfg.hearing.follow_up_s)

    def _finish_upload(self, turn: _Turn, answer_s: float) -> None:
        """The rest of the speech up, the answer (directive + audio) down, then hang up."""
        turn.uploading.clear()
        if turn.upload_thread is not None:
            turn.upload_thread.join(5)
        if turn.voice is None:
            return
        voice = self.config.voice
        turn.voice.exchange(int(voice.upload_bytes_per_s * 0.3), 800 + int(voice.response_bytes_per_s * answer_s))
        turn.voice.close()

    def _contact_skill(self, request: Request, cause: Cause) -> None:
        cfg = self.config
        hang = self._chance(cfg.failures.hang)
        for n, endpoint in enumerate(cfg.skill(request.skill_id).endpoints or []):
            if not self._chance(endpoint.probability) and not (hang and n == 0):
                continue
            stall = cfg.failures.hang_s if hang and n == 0 else None
            if stall is not None:
                self.truth.write(truth.Failure(kind="hang", request_seq=cause.request_seq,
                                               endpoint=vendor_name(endpoint.name, request.skill_id)))  # fmt: skip
            self._spawn(self._session, "twin-skill", vendor_name(endpoint.name, request.skill_id), cause,
                        endpoint.purpose, endpoint.bytes_up, endpoint.bytes_down, endpoint.delay_s, stall)  # fmt: skip

    def _session(self, name: str, cause: Cause, purpose: str, up: int, down: int, delay_s: float,
                 stall_s: float | None = None) -> None:  # fmt: skip
        if delay_s and self._stop.wait(delay_s):
            return
        session = self.net.connect(name, cause, purpose, stall_s)
        if session is not None:
            session.exchange(up, down)
            session.close()

    # ----- background --------------------------------------------------------------------------

    def _background(self) -> None:
        started = time.monotonic()
        queue = [(started + b.first_s, n) for n, b in enumerate(self.config.background)]
        heapq.heapify(queue)
        while queue and not self._stop.is_set():
            due, n = heapq.heappop(queue)
            if self._stop.wait(max(0.0, due - time.monotonic())):
                return
            item = self.config.background[n]
            self._spawn(self._background_item, f"twin-bg-{item.name}", n)
            heapq.heappush(queue, (due + item.every_s + self._uniform(-item.jitter_s, item.jitter_s), n))

    def _background_item(self, n: int) -> None:
        item = self.config.background[n]
        cause = Cause(kind="background")
        if item.kind == "ntp":
            self.net.time_query(item.name, cause)
        elif item.kind == "keepalive":
            session = self._keepalive.get(item.name)
            if session is None or session.closed:
                session = self.net.connect(item.name, cause, item.purpose)
                if session is None:
                    return
                self._keepalive[item.name] = session
            session.exchange(item.bytes_up, item.bytes_down)
        else:
            self._session(item.name, cause, item.purpose, item.bytes_up, item.bytes_down, 0.0)
