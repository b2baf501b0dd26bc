"""Bounded fuzzing of the parsers that read what others wrote: persona scripts, captures (pcap and
pcapng, built here) and ads files (JSON, JSON lines, CSV).

Each parser gets a few hundred seeded mutations of valid inputs. Every one must either load or
raise a :class:`~harness.errors.HarnessError` (a one-line message), never anything else. Each
batch runs in a child process limited to 1 GiB of memory and 30 s, so a runaway input fails the
test instead of the machine. Run this file directly to replay a batch:
``python tests/test_fuzz.py KIND SEED COUNT FOLDER``.
"""

from __future__ import annotations

import json
import random
import resource
import subprocess
import sys
import traceback
from collections.abc import Callable
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
INPUTS = 300
SEED = 16
MEMORY_BYTES = 1 << 30
BATCH_TIMEOUT_S = 30.0
# Values that make length and count fields lie.
_INTERESTING = [
    b"\x00",
    b"\xff",
    b"\x7f",
    b"\x80",
    b"\x00\x00\x00\x00",
    b"\xff\xff\xff\xff",
    b"\xff\xff",
    b"\x00\x00\x01\x00",
]
_TEXT_PIECES = [
    "{",
    "}",
    "[",
    "]",
    ",",
    ":",
    '"',
    "\n",
    "-",
    "&a ",
    "*a",
    "!!str ",
    "<<: ",
    "\t",
    "'",
    "#",
    "?",
    "|",
    "1e309",
    "-0",
    "NaN",
    "\u202e",
    "\x1b]0;x\x07",
    "=cmd()",
    "null",
    "9" * 40,
    "[" * 200,
]


def mutate_bytes(rng: random.Random, data: bytes) -> bytes:
    """A few random edits: flipped bytes, lying length fields, cuts, duplicated or dropped chunks."""
    out = bytearray(data)
    for _ in range(rng.randint(1, 6)):
        if not out:
            out += bytes([rng.randrange(256)])
        pos = rng.randrange(len(out))
        op = rng.randrange(6)
        if op == 0:
            out[pos] ^= 1 << rng.randrange(8)
        elif op == 1:
            value = rng.choice(_INTERESTING)
            out[pos : pos + len(value)] = value
        elif op == 2:
            del out[pos : pos + rng.randint(1, 64)]
        elif op == 3:
            end = min(len(out), pos + rng.randint(1, 128))
            out[pos:pos] = out[pos:end] * rng.randint(1, 4)
        elif op == 4:
            del out[pos:]
        else:
            out[pos:pos] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 16)))
    return bytes(out)


def mutate_text(rng: random.Random, text: str) -> bytes:
    """Edits that keep text mostly text: structural characters, odd values, deep nesting, cuts,
    repeats; now and then raw byte damage."""
    if rng.random() < 0.15:
        return mutate_bytes(rng, text.encode("utf-8"))
    out = text
    for _ in range(rng.randint(1, 6)):
        pos = rng.randrange(len(out) + 1)
        op = rng.randrange(5)
        if op == 4:  # nesting far deeper than any reader recurses
            opener = rng.choice(["[", '{"a":', "- ", "{a: "])
            out = out[:pos] + opener * rng.choice([100, 5_000, 100_000]) + out[pos:]
        elif op == 0:
            out = out[:pos] + rng.choice(_TEXT_PIECES) + out[pos:]
        elif op == 1:
            out = out[:pos] + out[pos + rng.randint(1, 40) :]
        elif op == 2:
            end = min(len(out), pos + rng.randint(1, 200))
            out = out[:pos] + out[pos:end] * rng.randint(2, 20) + out[end:]
        else:
            out = out[:pos]
    return out.encode("utf-8", "surrogatepass")


def script_seeds() -> list[tuple[str, str]]:
    return [(p.name, p.read_text(encoding="utf-8")) for p in sorted((REPO / "utterances").glob("*.yaml"))[:4]]


def capture_seeds() -> list[tuple[str, bytes]]:
    """Small captures built here: DNS, TLS with SNI, QUIC-ish UDP, IPv6, VLAN, Linux cooked, pcapng."""
    from harness.net import synth as s

    t0 = 1_700_000_000 * 10**9
    echo, gw, server, name = "192.168.1.23", "192.168.1.1", "52.94.233.1", "avs-alexa-na.amazon.com"
    echo_mac, gw_mac = "aa:bb:cc:00:00:01", "aa:bb:cc:00:00:02"
    hello = s.client_hello(name)

    def eth_ip(src: str, dst: str, proto: int, payload: bytes, vlans: tuple[int, ...] = ()) -> bytes:
        return s.ethernet(echo_mac, gw_mac, 0x0800, s.ipv4(src, dst, proto, payload), vlans)

    frames = [
        eth_ip(echo, gw, 17, s.udp(40000, 53, s.dns_query(name))),
        eth_ip(gw, echo, 17, s.udp(53, 40000, s.dns_response(name, [(name, "A", server)]))),
        eth_ip(echo, server, 6, s.tcp(50000, 443, b"", flags=0x02)),
        eth_ip(echo, server, 6, s.tcp(50000, 443, hello)),
        eth_ip(server, echo, 6, s.tcp(443, 50000, b"\x16\x03\x03\x00\x10" + bytes(16))),
        eth_ip(echo, server, 17, s.udp(50001, 443, b"\xc3\x00\x00\x00\x01" + bytes(40)), vlans=(7,)),
        s.ethernet(echo_mac, gw_mac, 0x86DD, s.ipv6("fd00::23", "2600:1f18::1", 6, s.tcp(50002, 443, hello))),
    ]
    packets = [(t0 + i * 1_000_000, frame) for i, frame in enumerate(frames)]
    cooked = [(t0, s.sll2(echo_mac, 0x0800, s.ipv4(echo, gw, 17, s.udp(40000, 53, s.dns_query("a.test")))))]
    blocks = b"".join(s.pcapng_packet(0, ts // 1000, frame) for ts, frame in packets)
    pcapng = s.pcapng_section() + s.pcapng_interface() + blocks
    return [
        ("eth.pcap", s.pcap_bytes(packets)),
        ("nano-be.pcap", s.pcap_bytes(packets, nanos=True, big=True)),
        ("cooked.pcap", s.pcap_bytes(cooked, linktype=276)),
        ("eth.pcapng", pcapng),
    ]


def ads_seeds() -> list[tuple[str, str]]:
    data = REPO / "tests" / "data" / "ads"
    found = [
        (p.name, p.read_text(encoding="utf-8"))
        for p in sorted(data.iterdir())
        if p.suffix in (".json", ".jsonl", ".csv")
    ]
    visits = [json.loads(line) for line in (data / "prebid.jsonl").read_text().splitlines()[:6] if line.startswith("{")]
    return [*found, ("visits.json", json.dumps(visits, indent=1))]


def _load_script(path: Path) -> None:
    from harness.script import load_personas

    load_personas([path])


def _load_capture(path: Path) -> None:
    from harness.net import read_traffic

    read_traffic([path])


def _load_ads(path: Path) -> None:
    from harness.ads import Rates, load_files

    load_files([path], Rates())


KINDS: dict[str, tuple[Callable[[], list], Callable[[random.Random, object], bytes], Callable[[Path], None]]] = {
    "script": (script_seeds, mutate_text, _load_script),
    "capture": (capture_seeds, mutate_bytes, _load_capture),
    "ads": (ads_seeds, mutate_text, _load_ads),
}


def run_batch(kind: str, seed: int, count: int, folder: Path) -> dict:
    """Feed ``count`` mutated inputs to one parser; returns what happened (failures kept on disk)."""
    from harness.errors import HarnessError

    make_seeds, mutate, load = KINDS[kind]
    seeds = make_seeds()
    rng = random.Random(f"{kind}-{seed}")
    outcome: dict = {"loaded": 0, "refused": 0, "failures": []}
    folder.mkdir(parents=True, exist_ok=True)
    for index in range(count):
        name, data = seeds[index % len(seeds)]
        path = folder / f"{index:04d}-{name}"
        path.write_bytes(mutate(rng, data))
        try:
            load(path)
            outcome["loaded"] += 1
        except HarnessError as exc:
            outcome["refused"] += 1
            if "\n" in str(exc):
                lines = len(str(exc).splitlines())
                outcome["failures"].append({"input": str(path), "error": f"message of {lines} lines"})
                continue
        except Exception as exc:  # noqa: BLE001 - any other exception is what this test looks for
            last = traceback.extract_tb(exc.__traceback__)[-1]
            outcome["failures"].append(
                {
                    "input": str(path),
                    "error": f"{type(exc).__name__}: {exc}"[:300],
                    "where": f"{last.filename}:{last.lineno}",
                }
            )
            continue
        path.unlink()
    return outcome


def _limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_BYTES, MEMORY_BYTES))


@pytest.mark.parametrize("kind", list(KINDS))
def test_mutated_inputs_load_or_give_one_line(kind, tmp_path):
    try:
        done = subprocess.run(
            [sys.executable, __file__, kind, str(SEED), str(INPUTS), str(tmp_path)],
            capture_output=True,
            text=True,
            timeout=BATCH_TIMEOUT_S,
            preexec_fn=_limit_memory,
            cwd=REPO,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"{kind}: {INPUTS} inputs took over {BATCH_TIMEOUT_S:.0f} s (inputs in {tmp_path})")
    assert done.returncode == 0, f"{kind}: the batch died (memory over 1 GiB?): {done.stderr[-2000:]}"
    outcome = json.loads(done.stdout)
    assert outcome["loaded"] + outcome["refused"] == INPUTS
    assert outcome["failures"] == [], json.dumps(outcome["failures"][:5], indent=1)


if __name__ == "__main__":
    kind_arg, seed_arg, count_arg, folder_arg = sys.argv[1:5]
    sys.path.insert(0, str(REPO / "tests"))
    print(json.dumps(run_batch(kind_arg, int(seed_arg), int(count_arg), Path(folder_arg))))
