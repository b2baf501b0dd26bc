"""The simulated Echo: hears the bench, answers it, talks to its loopback Internet, logs the truth.

Like an Echo, it opens its voice connection at boot (:meth:`Twin.start`), before a bench's
capture starts, and sends nothing else until :meth:`Twin.go`; every request's upload and answer
then travel on that connection (:mod:`harness.twin.link`). Threads: the ear (audio +
recognition), the voice connection's, one responder per request (skill endpoints, the spoken
answer), metrics posts, the background scheduler, and the servers. Everything the twin does is
written to the truth log as it happens.
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
from harness.defaults import default
from harness.errors import HarnessError
from harness.rundir import truth
from harness.rundir.truth import Cause, TruthLog
from harness.script import BUILTIN_SKILL_ID, Persona, SpeechSettings, spoken_text
from harness.speech import synthesize, synthesize_many
from harness.twin.client import Flow, Network
from harness.twin.config import Reply, TwinConfig
from harness.twin.ear import Ear, Heard, Wake
from harness.twin.grammar import Catalogue, Request
from harness.twin.link import Answer, Link, Upload
from harness.twin.mouth import Mouth
from harness.twin.servers import AddressBook, Servers
from harness.twin.wire import Wire
from harness.wav import read_wav

EAR_DEVICE = default.lab_output_monitor
MOUTH_DEVICE = default.lab_answer_output
LONG_ANSWER_PAUSE_S = 0.5
DIRECTIVE_BYTES = 800  # what to do and say, ahead of the answer's audio
METRICS_RECORD_BYTES = 4000  # a metrics post goes out in a few records of about this size
METRICS_SPREAD_S = (0.6, 1.0)  # ... within about a second


@dataclass
class _Turn:
    """One request in progress: its wake's seq in the truth and its upload on the voice connection."""

    seq: int
    upload: Upload
    follow_up: bool = False


def vendor_name(template: str, skill_id: str) -> str:
    """An endpoint template with ``{skill}`` filled (ids may hold '_', host names may not)."""
    return template.format(skill=skill_id.replace("_", "-"))


class Twin:
    """One simulated speaker. :meth:`start`, then :meth:`stop` (the truth is complete after it)."""

    def __init__(
        self,
        personas: list[Persona],
        config: TwinConfig,
        truth_path: Path,
        work_dir: Path,
        backend: str = default.backend,
        ear_device: str = EAR_DEVICE,
        mouth_device: str = MOUTH_DEVICE,
        synthetic_capture: Path | None = None,
        config_path: Path | None = None,
    ) -> None:
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
        self._links: dict[str, Link] = {}
        self._lock = threading.Lock()

    # ----- set-up ------------------------------------------------------------------------------

    def _skill_endpoints(self) -> list[str]:
        names = []
        for skill_id in self.skills:
            names += [vendor_name(e.name, skill_id) for e in self.config.skill(skill_id).endpoints or []]
        return names

    def start(self) -> None:
        """Boot: servers, the voice connection (its lookup and handshake), answers, hearing. The
        twin sends nothing else until :meth:`go`."""
        cfg = self.config
        book = AddressBook(cfg.network.platform_pool, cfg.network.vendor_pool, cfg.network.platform_domains)
        tls_names = [cfg.voice.endpoint, *([cfg.voice.metrics_endpoint] if cfg.voice.metrics_endpoint else [])]
        tls_names += self._skill_endpoints() + [b.name for b in cfg.background if b.kind != "ntp"]
        ntp_names = [b.name for b in cfg.background if b.kind == "ntp"]
        tls_names = list(dict.fromkeys(tls_names))
        self.servers = Servers(book, cfg.network.resolver, self.work_dir)
        self.servers.start(tls_names, ntp_names)
        self.wire = Wire(recording=False) if self.synthetic_capture else None
        self.net = Network(cfg.network.device, self.servers, self._flow, self.wire)
        voice = self._open_link(cfg.voice.endpoint, "voice")
        if voice is None:
            raise HarnessError(f"the twin could not connect to its voice service {cfg.voice.endpoint}")
        self.voice = voice
        self._prepare_answers()
        backend = open_backend(self.backend_name)
        self.mouth = Mouth(backend, resolve_device(self.mouth_device, "output", self.backend_name))
        self.ear = Ear(
            backend,
            resolve_device(self.ear_device, "input", self.backend_name),
            self.catalogue,
            cfg.hearing,
            self._on_wake,
            self._on_open_speech,
            self._on_heard,
        )
        for persona in self.personas:
            first = next((u.text for s in persona.skills for u in s.utterances), None)
            if first is not None:
                spoken = synthesize(spoken_text(first, persona.speech.wake_word), persona.speech)
                self.ear.prime(*read_wav(spoken.path))
        self.truth.write(
            truth.TwinStarted(
                device=cfg.network.device,
                resolver=f"{cfg.network.resolver}:{self.servers.ports['dns']}",
                ports=self.servers.ports,
                addresses=dict(book.addresses),
                seed=cfg.seed,
                config=str(self.config_path) if self.config_path else "default",
                config_sha256=hashlib.sha256(cfg.model_dump_json().encode()).hexdigest(),
                personas=[p.persona.id for p in self.personas],
                requests=len(self.catalogue.requests),
                ear_device=self.ear.device.name,
                ear_rate=self.ear.rate,
                mouth_device=self.mouth.device.name,
                capture="synthetic" if self.synthetic_capture else "external",
                synthetic_capture=str(self.synthetic_capture) if self.synthetic_capture else None,
            )
        )
        self.ear.start()
        if not self.ear.ready.wait(10) or self.ear.error is not None:
            raise RuntimeError(f"the twin's ear did not start: {self.ear.error}")

    def go(self) -> None:
        """Begin the traffic a capture should see: the synthetic capture records from here, the
        background schedule starts."""
        if self.wire is not None:
            self.wire.record()
        self.truth.write(truth.TwinLive(voice=self.voice.connection, voice_opened_ns=self.voice.session.flow.first_ns))
        self._spawn(self._background, "twin-background")

    def _open_link(self, name: str, purpose: str) -> Link | None:
        """A long-lived connection to ``name`` (None when it cannot be made)."""
        session = self.net.connect(name, Cause(kind="background"), purpose)
        if session is None or session.closed:
            return None
        with self._rng_lock:
            seed = self.rng.getrandbits(64)
        link = Link(session, self.config.voice, self.truth.write, random.Random(seed))
        self._links[name] = link
        return link

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
        if turn is not None:  # a request cut off by the stop: end its upload so its segment is logged
            self._finish_upload(turn, 0.0)
        deadline = time.monotonic() + 15
        for thread in list(self._threads):
            thread.join(max(0.1, deadline - time.monotonic()))
        for link in self._links.values():
            link.close()
        self.servers.stop()
        if self.wire is not None and self.synthetic_capture is not None:
            self.wire.write(self.synthetic_capture)
        self.truth.write(
            truth.TwinStopped(
                ear_error=repr(self.ear.error) if self.ear.error else None,
                synthetic_packets=len(self.wire) if self.wire is not None else None,
            )
        )
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
        if self._turn is not None and self._turn.follow_up:
            return  # the wake word said in an open-mic segment: its upload already runs
        if self._chance(self.config.failures.missed_wake):
            self._missed = wake
            self.truth.write(truth.Failure(kind="missed_wake", wake_wall_ns=wake.wall_ns))
            return
        seq = self.truth.write(
            truth.Wake(
                wall_ns=wake.wall_ns,
                noticed_ns=wake.noticed_ns,
                segment_onset_ns=wake.segment_onset_ns,
                while_answering=self._is_answering(),
            )
        )
        self.mouth.ducked.set()
        self._turn = _Turn(seq, self.voice.upload(Cause(kind="request", request_seq=seq)))

    def _on_open_speech(self, onset_ns: int) -> None:
        """Speech began while the microphone was open (a skill asked a question): upload it as it is spoken."""
        seq = self.truth.write(
            truth.Wake(
                wall_ns=None,
                noticed_ns=None,
                segment_onset_ns=onset_ns,
                while_answering=self._is_answering(),
                follow_up=True,
            )
        )
        self._turn = _Turn(seq, self.voice.upload(Cause(kind="request", request_seq=seq)), follow_up=True)

    def _is_answering(self) -> bool:
        return self._answering is not None and self._answering.is_alive()

    def _on_heard(self, heard: Heard) -> None:
        if heard.wake is not None and heard.wake is self._missed:
            return
        turn, self._turn = self._turn, None
        if turn is None:
            return
        request = self.catalogue.match(heard.hypothesis)
        outcome = "matched" if request else "unknown"
        if request is not None and self._chance(self.config.failures.misheard):
            with self._rng_lock:
                request = self.rng.choice([r for r in self.catalogue.requests.values() if r is not request])
            outcome = "misheard"
        self.truth.write(
            truth.Request(
                wake_seq=turn.seq,
                hypothesis=heard.hypothesis,
                outcome=outcome,
                text=request.text if request else None,
                skill_id=request.skill_id if request else None,
                utterance_id=request.utterance_id if request else None,
                onset_ns=heard.onset_ns,
                end_ns=heard.end_ns,
                decode_s=round(heard.decode_s, 3),
            )
        )
        self.mouth.ducked.clear()
        self._spawn(self._respond, "twin-respond", turn, heard, request)

    # ----- answering ---------------------------------------------------------------------------

    def _respond(self, turn: _Turn, heard: Heard, request: Request | None) -> None:
        cfg = self.config
        cause = Cause(
            kind="request",
            request_seq=turn.seq,
            utterance_id=request.utterance_id if request else None,
            skill_id=request.skill_id if request else None,
        )
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
        answer = self._finish_upload(turn, answer_s)
        if request is not None and request.skill_id != BUILTIN_SKILL_ID:
            self._contact_skill(request, cause)
        if not speak:
            return
        delay = self._uniform(*cfg.answers.delay_s)
        wait = (heard.end_ns + int(delay * 1e9) - time.time_ns()) / 1e9
        if wait > 0 and self._stop.wait(wait):
            return
        self._answering = threading.current_thread()
        spoken = self.mouth.say(samples, rate)
        if spoken.cut and answer is not None:
            self.voice.cancel(answer)
        self.truth.write(
            truth.Answer(
                request_seq=turn.seq,
                text=text,
                onset_wall_ns=spoken.onset_wall_ns,
                end_wall_ns=spoken.end_wall_ns,
                cut=spoken.cut,
                seconds=round(spoken.seconds_played, 3),
                planned_seconds=round(len(samples) / rate, 3),
                delay_s=round(delay, 3),
                device=self.mouth.device.name,
            )
        )
        if request is not None and request.has_follow_ups and not spoken.cut:
            self.ear.open_mic(cfg.hearing.follow_up_s)
        self._spawn(self._post_metrics, "twin-metrics", cause)

    def _finish_upload(self, turn: _Turn, answer_s: float) -> Answer | None:
        """End the upload; the answer (directive, a burst of audio, then the rest at the audio's
        rate) comes down on the voice connection."""
        voice = self.config.voice
        audio = voice.response_bytes_per_s
        down = DIRECTIVE_BYTES + int(audio * answer_s)
        burst = DIRECTIVE_BYTES + int(audio * min(answer_s, voice.response_burst_s))
        return self.voice.finish(turn.upload, down, burst, audio)

    def _post_metrics(self, cause: Cause) -> None:
        """Sometimes, seconds after an answer, a single-second post of a few large records to the
        metrics endpoint: bursts, no speech-rate stream after them."""
        voice = self.config.voice
        if not voice.metrics_endpoint or not self._chance(voice.metrics_probability):
            return
        if self._stop.wait(self._uniform(*voice.metrics_delay_s)):
            return
        session = self.net.connect(voice.metrics_endpoint, cause, "metrics")
        if session is None:
            return
        with self._rng_lock:
            total = self.rng.randint(*voice.metrics_bytes)
        session.post(total, METRICS_RECORD_BYTES, self._uniform(*METRICS_SPREAD_S), 200)
        session.close()

    def _contact_skill(self, request: Request, cause: Cause) -> None:
        cfg = self.config
        hang = self._chance(cfg.failures.hang)
        for n, endpoint in enumerate(cfg.skill(request.skill_id).endpoints or []):
            if not self._chance(endpoint.probability) and not (hang and n == 0):
                continue
            stall = cfg.failures.hang_s if hang and n == 0 else None
            if stall is not None:
                self.truth.write(
                    truth.Failure(
                        kind="hang",
                        request_seq=cause.request_seq,
                        endpoint=vendor_name(endpoint.name, request.skill_id),
                    )
                )
            self._spawn(
                self._session,
                "twin-skill",
                vendor_name(endpoint.name, request.skill_id),
                cause,
                endpoint.purpose,
                endpoint.bytes_up,
                endpoint.bytes_down,
                endpoint.delay_s,
                stall,
            )

    def _session(
        self, name: str, cause: Cause, purpose: str, up: int, down: int, delay_s: float, stall_s: float | None = None
    ) -> None:
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
        elif item.kind == "keepalive":  # on the long-lived connection to its name (the voice one, opened at boot)
            link = self._links.get(item.name)
            if link is None or link.closed:
                link = self._open_link(item.name, item.purpose)
                if link is None:
                    return
            link.keepalive(cause, item.bytes_up, item.bytes_down)
        else:
            self._session(item.name, cause, item.purpose, item.bytes_up, item.bytes_down, 0.0)
