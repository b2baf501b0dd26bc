"""`harness synth`, `harness voices`, `harness plan`: hear what the personas will say, and when.

The commands import what they use when they run, so that ``harness --help`` starts fast.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from harness.cli.args import add_format, add_quiet
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
    add_format(synth)
    add_quiet(synth)
    synth.set_defaults(func=run_synth)

    voices = subparsers.add_parser(
        "voices", help="list the voices of a speech engine", description="List the voices of a speech engine."
    )
    voices.add_argument(
        "--engine", choices=ENGINE_NAMES, default=default_engine_name(), help="speech engine (default: %(default)s)"
    )
    voices.add_argument("--language", metavar="CODE", help="only voices whose language starts with CODE (e.g. en)")
    add_format(voices)
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
    add_format(plan)
    add_quiet(plan)
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


def _synthesise(texts: list[SpokenText], cache: Path | None, quiet: bool = False) -> list[Synthesis]:
    """Synthesise ``texts`` with a progress bar on stderr."""
    from harness.cli.console import progress
    from harness.speech import cached_path, synthesize_many

    distinct = len({cached_path(t.text, t.settings, cache) for t in texts})
    done = 0

    with progress(quiet) as report:

        def advance(_: object) -> None:
            nonlocal done
            done += 1
            report("synthesising", done, distinct)

        report("synthesising", 0, distinct)
        return synthesize_many([(t.text, t.settings) for t in texts], cache, on_done=advance)


def run_synth(args: argparse.Namespace) -> int:
    import pandas as pd
    from rich.table import Table
    from rich.text import Text

    from harness.cli.console import out, print_csv, print_json
    from harness.files import atomic_write_bytes
    from harness.script import build_plan, load_personas
    from harness.speech import spoken_texts
    from harness.termtable import keep_names

    personas = load_personas(args.paths)
    texts = [t for p in personas for t in spoken_texts(p, build_plan(p), _settings(p, args))]
    results = _synthesise(texts, args.cache, args.quiet)
    rows = []
    seen: set[Path] = set()
    for t, s in zip(texts, results, strict=True):
        rows.append(
            {
                "persona_id": t.persona_id,
                "skill_id": t.skill_id,
                "utterance_id": t.utterance_id,
                "text": t.text,
                "duration_s": s.duration_s,
                "cache_hit": s.cache_hit or s.path in seen,
                "wav": str(s.path),
            }
        )
        seen.add(s.path)
        if args.out is not None:
            name = t.utterance_id.replace("/", "_") + ".wav"
            atomic_write_bytes(args.out / t.persona_id / name, s.path.read_bytes())
    distinct = {s.path: s for s in results}
    hits = sum(s.cache_hit for s in distinct.values())
    audio = sum(s.duration_s for s in distinct.values())
    if args.format == "json":
        print_json({"texts": rows, "distinct": len(distinct), "from_cache": hits, "audio_s": audio})
        return 0
    if args.format == "csv":
        print_csv(pd.DataFrame(rows))
        return 0
    table = Table("persona", "skill", "utterance", "text", "duration s", "cache")
    for row in rows:
        table.add_row(
            Text(row["persona_id"]),
            Text(row["skill_id"]),
            Text(row["utterance_id"]),
            Text(row["text"]),
            f"{row['duration_s']:.2f}",
            "hit" if row["cache_hit"] else "new",
        )
    out.print(keep_names(table, 0, 1, 2))
    summary = (
        f"{len(texts)} texts ({len(distinct)} distinct): {hits} from the cache, "
        f"{len(distinct) - hits} synthesised; {audio:,.1f} s of audio"
    )
    out.print(Text(summary))
    if args.out is not None:
        out.print(Text(f"exported to {args.out}/<persona>/<utterance>.wav"))
    return 0


def run_voices(args: argparse.Namespace) -> int:
    from rich.table import Table
    from rich.text import Text

    from harness.cli.console import out, print_csv, print_json
    from harness.speech import get_engine
    from harness.termtable import keep_names

    voices = get_engine(args.engine).voices()
    if args.language:
        prefix = args.language.lower()
        voices = [v for v in voices if any(lang.lower().startswith(prefix) for lang in v.languages)]
    rows = [{"id": v.id, "name": v.name, "languages": list(v.languages), "gender": v.gender} for v in voices]
    if args.format == "json":
        print_json({"engine": args.engine, "voices": rows})
        return 0
    if args.format == "csv":
        import pandas as pd

        print_csv(pd.DataFrame(rows, columns=["id", "name", "languages", "gender"]))
        return 0
    table = Table("id", "name", "languages", "gender", title=f"{args.engine} voices ({len(voices)})")
    for v in voices:
        table.add_row(Text(v.id), Text(v.name), Text(", ".join(v.languages)), v.gender or "")
    out.print(keep_names(table, 0))
    if args.engine == "espeak":
        out.print("Append a variant to any espeak voice for another timbre, e.g. en-us+f2 (female), en-us+m3.")
    return 0


def speech_seconds(
    plans: list[tuple[Persona, list[PlanItem], SpeechSettings]], cache: Path | None, quiet: bool = False
) -> dict[tuple[str, str], float]:
    """Seconds each text of each persona's plan takes to say, keyed by (persona id, text), from the
    speech cache (synthesised where missing, with a progress bar)."""
    from harness.speech import spoken_texts

    texts = [t for persona, plan, settings in plans for t in spoken_texts(persona, plan, settings)]
    spoken = zip(texts, _synthesise(texts, cache, quiet), strict=True)
    return {(t.persona_id, t.text): s.duration_s for t, s in spoken}


def run_plan(args: argparse.Namespace) -> int:
    import pandas as pd
    from rich.table import Table
    from rich.text import Text

    from harness.cli.console import out, print_csv, print_json
    from harness.script import build_plan, load_personas
    from harness.script.duration import Duration, clock_text, run_duration
    from harness.termtable import keep_names

    personas = load_personas(args.paths)
    plans = [(p, build_plan(p, args.seed), _settings(p, args)) for p in personas]
    seconds = speech_seconds(plans, args.cache, args.quiet)
    rows: list[dict[str, object]] = []
    durations: list[tuple[str, int, Duration]] = []
    grand = Duration()
    for persona, plan, _ in plans:
        pid = persona.persona.id
        for item in plan:
            texts = [(item.utterance_id, item.text, item.index)] + [
                (f"{item.utterance_id}/followup-{k}", text, None) for k, text in enumerate(item.follow_ups, start=1)
            ]
            rows += [
                {
                    "index": index,
                    "persona_id": pid,
                    "skill_id": item.skill_id,
                    "utterance_id": uid,
                    "text": text,
                    "speech_s": seconds[(pid, text)],
                }
                for uid, text, index in texts
            ]
        d = run_duration(plan, lambda _, p=persona: p, lambda p, text: seconds[(p.persona.id, text)])
        grand += d
        durations.append((pid, len(plan), d))
    if args.format == "csv":
        print_csv(pd.DataFrame(rows).astype({"index": "Int64"}))
        return 0
    if args.format == "json":
        print_json(
            {
                "utterances": rows,
                "personas": [
                    {
                        "persona_id": pid,
                        "utterances": n,
                        "speech_s": d.speech_s,
                        "gaps_s": d.gaps_s,
                        "answer_waits_s": d.waits_s,
                        "estimate_s": d.estimate_s,
                        "worst_s": d.worst_s,
                    }
                    for pid, n, d in durations
                ],
                "estimate_s": grand.estimate_s,
                "worst_s": grand.worst_s,
                "note": ESTIMATE_NOTE,
            }
        )
        return 0
    table = Table("#", "persona", "skill", "utterance", "text", "speech s")
    for row in rows:
        table.add_row(
            "" if row["index"] is None else str(row["index"]),
            Text(str(row["persona_id"])),
            Text(str(row["skill_id"])),
            Text(str(row["utterance_id"])),
            Text(str(row["text"])),
            f"{row['speech_s']:.2f}",
        )
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
    for pid, n, d in durations:
        totals.add_row(
            Text(pid),
            str(n),
            f"{d.speech_s:,.1f}",
            f"{d.gaps_s:,.1f}",
            f"{d.waits_s:,.1f}",
            clock_text(d.estimate_s),
            clock_text(d.worst_s),
        )
    out.print(keep_names(table, 1, 2, 3))
    out.print(keep_names(totals, 0))
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
