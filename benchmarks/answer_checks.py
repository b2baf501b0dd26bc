"""How often an answer check matches on the twin's answers, per shipped persona, against a baseline.

    .venv/bin/python benchmarks/answer_checks.py [utterances/ ...]

Method. For every utterance with an ``expect`` in the given persona scripts (default: the shipped
``utterances/``), the twin's answer is made as the twin makes it (its shipped configuration: the
skill's reply, else its answer, else the default ``Here is {skill}. You asked: {request}.``, in
its voice) with the espeak-ng command line, transcribed by the recogniser a run uses (the
persona's expect keywords added to its vocabulary) and checked by
:func:`harness.bench.checks.check_transcript`. The twin's answers reach a run through the lab's
null sinks unchanged (NCC >= 0.9999 measured on this platform), so the recording step is left
out. Baseline, same transcripts: exact matching (a keyword's words in a row, case-folded, no
fuzzy comparison), which shows what the fuzzy word comparison adds. Prints matched / total per
persona and overall for both.
"""

from __future__ import annotations

import argparse
import collections
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from harness.bench.checks import check_transcript
from harness.bench.transcribe import Transcriber
from harness.script import Expect, load_persona, script_paths, spoken_text
from harness.script.wake import words
from harness.twin.config import load_config
from harness.twin.grammar import request_words
from harness.wav import read_wav

REPO = Path(__file__).resolve().parents[1]


def exact(transcript: str, expect: Expect) -> bool:
    heard = " " + " ".join(words(transcript)) + " "
    if any(f" {' '.join(words(k))} " in heard for k in expect.keywords):
        return True
    return expect.regex is not None and re.search(expect.regex, heard.strip(), re.IGNORECASE) is not None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="*", type=Path, default=[REPO / "utterances"])
    args = parser.parse_args()
    if shutil.which("espeak-ng") is None:
        print("espeak-ng is not installed")
        return 0
    files, errors = script_paths(args.paths)
    if errors:
        print(errors[0])
        return 1
    config = load_config(None)
    fuzzy: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    for path in files:
        persona = load_persona(path)
        vocabulary = {
            w for s in persona.skills for u in s.utterances if u.expect for k in u.expect.keywords for w in words(k)
        }
        transcriber = Transcriber(vocabulary)
        tally = fuzzy[persona.persona.id]
        for skill in persona.skills:
            twin = config.skill(skill.id)
            for utterance in skill.utterances:
                if utterance.expect is None:
                    continue
                request = request_words(spoken_text(utterance.text, persona.speech.wake_word), persona.speech.wake_word)
                reply = twin.replies.get(request) or twin.answer or config.answers.skill_answer
                text = reply.text.replace("{request}", request).replace("{skill}", skill.name)
                with tempfile.NamedTemporaryFile(suffix=".wav") as wav:
                    voice = ["-v", config.answers.voice, "-s", str(config.answers.rate)]
                    subprocess.run(["espeak-ng", *voice, "-w", wav.name, text], check=True)
                    samples, rate = read_wav(wav.name)
                transcript = transcriber.transcribe(samples, rate)
                tally["total"] += 1
                tally["matched"] += check_transcript(transcript, utterance.expect).result == "matched"
                tally["exact"] += exact(transcript, utterance.expect)
        print(f"{persona.persona.id}: matched {tally['matched']}/{tally['total']} (exact {tally['exact']})", flush=True)
    total = sum((c for c in fuzzy.values()), collections.Counter())
    if total["total"]:
        print(
            f"all: matched {total['matched']}/{total['total']} = {total['matched'] / total['total']:.1%}; "
            f"exact matching {total['exact']}/{total['total']} = {total['exact'] / total['total']:.1%}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
