"""The twin's configuration file: what it says, which endpoints it contacts and how it fails.

Read with the persona scripts' position-aware YAML reader, so every mistake is reported as
``FILE:LINE:COL: message``.
"""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from harness.errors import InputError
from harness.script import ScriptErrors
from harness.script.problems import problem
from harness.yamlsource import read_source

DEFAULT_CONFIG = Path(__file__).with_name("default.yaml")
Probability = float
_HOST_CHARS = set("abcdefghijklmnopqrstuvwxyz0123456789-.{}_")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _host_name(value: str) -> str:
    name = value.strip().lower().rstrip(".")
    if not name or "." not in name or not set(name) <= _HOST_CHARS:
        raise ValueError(f"{value!r} is not a host name")
    return name


HostName = Annotated[str, AfterValidator(_host_name)]


class Reply(_Model):
    """What the twin says. ``text`` may use ``{request}`` (what it heard) and ``{skill}`` (the
    skill's name). ``seconds``: repeat the text until the answer lasts at least that long (a
    news briefing or a stream)."""

    text: str = Field(min_length=1)
    seconds: float | None = Field(default=None, gt=0, le=600)


class Endpoint(_Model):
    """One server the twin contacts for a request: looked up by DNS, then a TLS connection."""

    name: HostName
    probability: Probability = Field(default=1.0, ge=0, le=1, description="chance per request")
    delay_s: float = Field(default=0.2, ge=0, le=60, description="after the request was recognised")
    bytes_up: int = Field(default=900, ge=0, le=50_000_000)
    bytes_down: int = Field(default=4000, ge=0, le=50_000_000)
    purpose: Literal["skill", "tracking", "content", "advertising", "metrics"] = "skill"


class SkillTwin(_Model):
    """How one skill behaves: its answer, special replies per request, its endpoints."""

    answer: Reply | None = None
    replies: dict[str, Reply] = Field(default_factory=dict, description="request text (no wake word) -> reply")
    endpoints: list[Endpoint] | None = None


class Background(_Model):
    """Traffic unrelated to speech, repeated every ``every_s`` (+- ``jitter_s``)."""

    name: HostName
    kind: Literal["tls", "ntp", "keepalive"] = "tls"
    every_s: float = Field(gt=0, le=86400)
    jitter_s: float = Field(default=0.0, ge=0)
    first_s: float = Field(default=1.0, ge=0, description="delay of the first one after start")
    bytes_up: int = Field(default=800, ge=0, le=50_000_000)
    bytes_down: int = Field(default=300, ge=0, le=50_000_000)
    purpose: Literal["metrics", "time", "keepalive", "update", "platform"] = "metrics"

    @model_validator(mode="after")
    def _jitter_below_period(self) -> Background:
        if self.jitter_s >= self.every_s:
            raise ValueError("jitter_s must be smaller than every_s")
        return self


class Network(_Model):
    """Loopback addresses: the twin's own, its resolver's, and the pools endpoints get."""

    device: str = "127.0.0.2"
    resolver: str = "127.0.3.53"
    platform_pool: str = Field(default="127.0.1.0/24", description="addresses of Amazon's endpoints")
    vendor_pool: str = Field(default="127.0.2.0/24", description="addresses of every other endpoint")
    platform_domains: list[str] = Field(default_factory=lambda: ["amazon.com", "amazonalexa.com", "amazonaws.com"])

    @field_validator("device", "resolver")
    @classmethod
    def _loopback(cls, value: str) -> str:
        try:
            address = ipaddress.IPv4Address(value)
        except ValueError:
            raise ValueError(f"{value!r} is not an IPv4 address") from None
        if not address.is_loopback:
            raise ValueError(f"{value} is not a loopback address (127.0.0.0/8): the twin never leaves this host")
        return value

    @field_validator("platform_pool", "vendor_pool")
    @classmethod
    def _loopback_pool(cls, value: str) -> str:
        try:
            net = ipaddress.IPv4Network(value)
        except ValueError:
            raise ValueError(f"{value!r} is not an IPv4 network like 127.0.1.0/24") from None
        if not net.subnet_of(ipaddress.IPv4Network("127.0.0.0/8")):
            raise ValueError(f"{value} is not inside 127.0.0.0/8: the twin never leaves this host")
        return value


def _range(value: tuple[float, float], low: float, high: float, info: ValidationInfo) -> tuple[float, float]:
    """``value`` when it is ``[min, max]`` inside ``[low, high]``."""
    if not low <= value[0] <= value[1] <= high:
        raise ValueError(f"{info.field_name} must be [min, max] with {low:g} <= min <= max <= {high:g}")
    return value


class Voice(_Model):
    """The voice service, as an Echo uses it: one long-lived connection opened at boot carries
    every request's upload (an opening burst, then a speech-rate stream while the person speaks)
    and its answer (a burst, then the rest at the answer audio's rate); metrics posts follow some
    answers on their own connections."""

    endpoint: HostName = "avs-alexa-14-na.amazon.com"
    opening_bytes: tuple[int, int] = Field(default=(20_000, 30_000), description="[min, max] of the opening burst")
    opening_s: tuple[float, float] = Field(default=(0.3, 0.8), description="[min, max] seconds the opening takes")
    stream_bytes_per_s: int = Field(default=8500, gt=0, le=100_000, description="speech stream after the opening")
    record_s: tuple[float, float] = Field(default=(0.07, 0.1), description="[min, max] seconds between stream records")
    response_bytes_per_s: int = Field(default=3000, ge=0, description="answer audio, per second of answer")
    response_burst_s: float = Field(default=2.0, ge=0, le=60, description="answer audio sent at once, then paced")
    metrics_endpoint: HostName | None = Field(default="unagi-na.amazon.com", description="metrics posts after answers")
    metrics_probability: Probability = Field(default=0.75, ge=0, le=1, description="chance of a post after an answer")
    metrics_delay_s: tuple[float, float] = Field(default=(10.0, 15.0), description="[min, max] after the answer ends")
    metrics_bytes: tuple[int, int] = Field(default=(11_000, 17_000), description="[min, max] bytes of a post")

    @field_validator("opening_bytes", "metrics_bytes")
    @classmethod
    def _bytes(cls, value: tuple[int, int], info: ValidationInfo) -> tuple[int, int]:
        return _range(value, 0, 10_000_000, info)  # type: ignore[return-value]

    @field_validator("opening_s", "record_s")
    @classmethod
    def _short(cls, value: tuple[float, float], info: ValidationInfo) -> tuple[float, float]:
        return _range(value, 0.01, 2, info)

    @field_validator("metrics_delay_s")
    @classmethod
    def _delay(cls, value: tuple[float, float], info: ValidationInfo) -> tuple[float, float]:
        return _range(value, 0, 120, info)


class Hearing(_Model):
    wake_word: str = "alexa"
    kws_threshold: float = Field(default=1e-40, gt=0, lt=1)
    end_silence_s: float = Field(default=0.6, gt=0.1, le=3, description="silence that ends a request")
    threshold_dbfs: float = Field(default=-45.0, le=0, description="level above which a frame is voice")
    follow_up_s: float = Field(default=8.0, ge=0, le=30, description="mic stays open this long for a follow-up")
    max_request_s: float = Field(default=12.0, gt=1, le=60)


class Answers(_Model):
    engine: Literal["espeak", "pyttsx3"] = "espeak"
    voice: str = "en-us+f3"
    rate: int = Field(default=170, ge=80, le=450)
    delay_s: tuple[float, float] = Field(default=(0.5, 1.5), description="[min, max] before the answer starts")
    unknown: str = "Sorry, I don't know that."
    skill_answer: Reply = Reply(text="Here is {skill}. You asked: {request}.")
    builtins: dict[str, Reply] = Field(default_factory=dict, description="built-in request text -> reply")

    @field_validator("delay_s")
    @classmethod
    def _ordered(cls, value: tuple[float, float], info: ValidationInfo) -> tuple[float, float]:
        return _range(value, 0, 30, info)


class Failures(_Model):
    """Chances that the twin fails like a real speaker (each per request)."""

    missed_wake: Probability = Field(default=0.0, ge=0, le=1)
    misheard: Probability = Field(default=0.0, ge=0, le=1)
    no_answer: Probability = Field(default=0.0, ge=0, le=1)
    hang: Probability = Field(default=0.0, ge=0, le=1, description="a skill endpoint stalls its TLS handshake")
    hang_s: float = Field(default=5.0, gt=0, le=120, description="how long the twin waits on a stalled endpoint")


class TwinConfig(_Model):
    seed: int | None = None
    network: Network = Network()
    hearing: Hearing = Hearing()
    answers: Answers = Answers()
    voice: Voice = Voice()
    default_skill: SkillTwin = SkillTwin(endpoints=[Endpoint(name="{skill}.skill.test")])
    skills: dict[str, SkillTwin] = Field(default_factory=dict, description="skill id -> behaviour")
    background: list[Background] = Field(default_factory=list)
    failures: Failures = Failures()

    def skill(self, skill_id: str) -> SkillTwin:
        """The behaviour of ``skill_id``, unset parts taken from ``default_skill``."""
        own = self.skills.get(skill_id, SkillTwin())
        base = self.default_skill
        return SkillTwin(
            answer=own.answer or base.answer,
            replies={**base.replies, **own.replies},
            endpoints=own.endpoints if own.endpoints is not None else base.endpoints or [],
        )


def load_config(path: str | os.PathLike[str] | None = None) -> TwinConfig:
    """The twin configuration in ``path`` (default: the shipped ``default.yaml``).

    Raises :class:`ScriptErrors` holding every problem with its line and column.
    """
    source = read_source(Path(path) if path else DEFAULT_CONFIG)
    if source.errors:
        raise ScriptErrors(source.errors)
    try:
        return TwinConfig.model_validate(source.data if source.data is not None else {})
    except ValidationError as exc:
        errors = [
            InputError(source.path, message, place)
            for place, message in (problem(TwinConfig, source, e) for e in exc.errors(include_url=False))
        ]
        errors.sort(key=lambda e: (e.place.line or 0, e.place.column or 0))
        raise ScriptErrors(errors) from None
