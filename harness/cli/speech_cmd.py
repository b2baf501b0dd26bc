"""`harness synth`, `harness voices`, `harness plan`: hear what the personas will say, and when.

The commands import what they use when they run, so that ``harness --help`` starts fast.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from harness.speech.cachedir import default_cache_dir
from harness.speech.engine import ENGINE_NAMES, default_engine_name

if TYPE_CHECKING:
    from harness.script import Persona, PlanItem
    from harness.script.models import SpeechSettings
    from harness.speech import SpokenText, Synthesis


def register(subparsers: argparse._SubParsersAction) -> None:
    synth = subparsers.add_parser(
        "synth",
        help="synthesise everything the personas say (cached WAVs)",
        description="Synthesise every distinct text of the personas (utterances with the wake word, "
        "follow-ups, the stop phrase) into the speech cache; a second run is served from the cache.",
    )
    _add_paths(synth)
    _add_speech_options(synth)
    synth.add_argument("--out", type=Path, metavar="DIR", help="also export the WAVs as DIR/<persona>/<utterance>.wav")
    synth.set_defaults(func=run_synth)

    voices = subparsers.add_parser(
        "voices", help="list the voices of a speech engine", description="List the voices of a speech engine."
    )
    voices.add_argument(
        "--engine", choices=ENGINE_NAMES, default=default_engine_name(), help="speech engine (default: %(default)s)"
    )
    voices.add_argument("--language", metavar="CODE", help="only voices whose language starts with CODE (e.g. en)")
    voices.set_defaults(func=run_voices)

    plan = subparsers.add_parser(
        "plan",
        help="print the order of a run and its estimated duration",
        description="Print the order in which a run would speak each utterance, with exact speech "
        "durations (synthesised through the cache), and the run's estimated duration.",
    )
    _add_paths(plan)
    plan.add_argument("--seed", type=int, help="seed for personas with order: shuffled (default: the script's)")
    _add_speech_options(plan)
    plan.set_defaults(func=run_plan)


def _add_paths(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="+", type=Path, metavar="PATH", help="persona script files or folders of *.yaml")


def _add_speech_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--engine", choices=ENGINE_NAMES, help="speech engine (default: each persona's)")
    parser.add_argument("--voice", help="voice id, e.g. en-us, gmw/en-us, en-us+f2 (default: each persona's)")
    parser.add_argument("--cache", type=Path, metavar="DIR", help=f"speech cache (default: {default_cache_dir()})")


def _settings(persona: Persona, args: argparse.Namespace) -> SpeechSettings:
    changes = {k: v for k, v in (("engine", args.engine), ("voice", args.voice)) if v is not None}
    return persona.speech.model_copy(update=changes)


def _synthesise(texts: list[SpokenText], cache: Path | None) -> list[Synthesis]:
    """Synthesise ``texts`` with a progress bar on stderr."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from harness.cli.console import err
    from harness.speech import cached_path, synthesize_many

    columns = (TextColumn("synthesising"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=err, transient=True, disable=not err.is_terminal) as progress:
        distinct = len({cached_path(t.text, t.settings, cache) for t in texts})
        task = progress.add_task("synth", total=distinct)
        return synthesize_many([(t.text, t.settings) for t in texts], cache, on_done=lambda _: progress.advance(task))


def run_synth(args: argparse.Namespace) -> int:
    from rich.table import Table
    from rich.text import Text

    from harness.cli.console import out
    from harness.files import atomic_write_bytes
    from harness.script import build_plan, load_personas
    from harness.speech import spoken_texts

    personas = load_personas(args.paths)
    texts = [t for p in personas for t in spoken_texts(p, build_plan(p), _settings(p, args))]
    results = _synthesise(texts, args.cache)
    table = Table("persona", "skill", "utterance", "text", "duration s", "cache")
    seen: set[Path] = set()
    for t, s in zip(texts, results, strict=True):
        hit = s.cache_hit or s.path in seen
        seen.add(s.path)
        table.add_row(
            t.persona_id, t.skill_id, t.utterance_id, Text(t.text), f"{s.duration_s:.2f}", "hit" if hit else "new"
        )
        if args.out is not None:
            name = t.utterance_id.replace("/", "_") + ".wav"
            atomic_write_bytes(args.out / t.persona_id / name, s.path.read_bytes())
    out.print(table)
    distinct = {s.path: s for s in results}
    hits = sum(s.cache_hit for s in distinct.values())
    audio = sum(s.duration_s for s in distinct.values())
    summary = (
        f"{len(texts)} texts ({len(distinct)} distinct): {hits} from the cache, "
        f"{len(distinct) - hits} synthesised; {audio:.1f} s of audio"
    )
    out.print(Text(summary))
    if args.out is not None:
        out.print(Text(f"exported to {args.out}/<persona>/<utterance>.wav"))
    return 0


def run_voices(args: argparse.Namespace) -> int:
    from rich.table import Table
    from rich.text import Text

    from harness.cli.console import out
    from harness.speech import get_engine

    voices = get_engine(args.engine).voices()
    if args.language:
        prefix = args.language.lower()
        voices = [v for v in voices if any(lang.lower().startswith(prefix) for lang in v.languages)]
    table = Table("id", "name", "languages", "gender", title=f"{args.engine} voices ({len(voices)})")
    for v in voices:
        table.add_row(Text(v.id), Text(v.name), Text(", ".join(v.languages)), v.gender or "")
    out.print(table)
    if args.engine == "espeak":
        out.print("Append a variant to any espeak voice for another timbre, e.g. en-us+f2 (female), en-us+m3.")
    return 0


def speech_seconds(
    plans: list[tuple[Persona, list[PlanItem], SpeechSettings]], cache: Path | None
) -> dict[tuple[str, str], float]:
    """Seconds each text of each persona's plan takes to say, keyed by (persona id, text), from the
    speech cache (synthesised where missing, with a progress bar)."""
    from harness.speech import spoken_texts

    texts = [t for persona, plan, settings in plans for t in spoken_texts(persona, plan, settings)]
    return {(t.persona_id, t.text): s.duration_s for t, s in zip(texts, _synthesise(texts, cache), strict=True)}


def run_plan(args: argparse.Namespace) -> int:
    from rich.table import Table
    from rich.text import Text

    from harness.cli.console import out
    from harness.script import build_plan, load_personas
    from harness.script.duration import Duration, clock_text, run_duration

    personas = load_personas(args.paths)
    plans = [(p, build_plan(p, args.seed), _settings(p, args)) for p in personas]
    seconds = speech_seconds(plans, args.cache)
    table = Table("#", "persona", "skill", "utterance", "text", "speech s")
    totals = Table(
        "persona",
        "utterances",
        "speech s",
        "gaps s",
        "answer waits s",
        "estimate",
        "worst case",
        title="estimated duration",
    )
    grand = Duration()
    for persona, plan, _ in plans:
        pid = persona.persona.id
        for item in plan:
            table.add_row(
                str(item.index),
                pid,
                item.skill_id,
                item.utterance_id,
                Text(item.text),
                f"{seconds[(pid, item.text)]:.2f}",
            )
            for k, follow_up in enumerate(item.follow_ups, start=1):
                table.add_row(
                    "",
                    pid,
                    item.skill_id,
                    f"{item.utterance_id}/followup-{k}",
                    Text(follow_up),
                    f"{seconds[(pid, follow_up)]:.2f}",
                )
        d = run_duration(plan, lambda _, p=persona: p, lambda p, text: seconds[(p.persona.id, text)])
        grand += d
        totals.add_row(
            pid,
            str(len(plan)),
            f"{d.speech_s:.1f}",
            f"{d.gaps_s:.1f}",
            f"{d.waits_s:.1f}",
            clock_text(d.estimate_s),
            clock_text(d.worst_s),
        )
    out.print(table)
    out.print(totals)
    if len(plans) > 1:
        out.print(
            Text(
                f"all {len(plans)} personas: estimate {clock_text(grand.estimate_s)}, "
                f"worst case {clock_text(grand.worst_s)}"
            )
        )
    out.print(Text(ESTIMATE_NOTE))
    return 0


ESTIMATE_NOTE = (
    "estimate = speech + gaps (gap_s between utterances) + answer waits (answer_timeout_s counted in full "
    "for every utterance and follow-up, the longest the bench waits for an answer to start); "
    "worst case adds max_answer_s and the stop phrase to every answer."
)
