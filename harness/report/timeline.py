"""The run's timeline as a figure: utterances, answers, activations, and a raster of contacts
per endpoint coloured by category (capture clock, seconds from the start of the capture)."""

from __future__ import annotations

import pandas as pd
from matplotlib.figure import Figure
from matplotlib.patches import Patch

CATEGORY_COLOURS = {
    "voice": "#1f77b4",
    "platform": "#7f7f7f",
    "advertising": "#d62728",
    "tracking": "#ff7f0e",
    "content": "#2ca02c",
    "other": "#9467bd",
}
UTTERANCE_COLOUR, ANSWER_COLOUR, ACTIVATION_COLOUR = "#444444", "#8c564b", "#17becf"
CATEGORY_MEANING = {
    "voice": "the voice service (requests and answers)",
    "platform": "the device platform (updates, metrics, time)",
    "advertising": "on an advertising list",
    "tracking": "on a tracking list",
    "content": "media and content delivery",
    "other": "anything else",
}
MAX_ROWS = 30  # endpoints beyond this are summed up in the tables, not drawn


def plain(text: object) -> str:
    """A label matplotlib draws literally ('$' would start mathtext)."""
    return str(text).replace("$", r"\$")


def _short(text: str, size: int = 48) -> str:
    return text if len(text) <= size else text[: size - 1] + "…"


def legend_items() -> list[tuple[str, str, str]]:
    """(name, colour, meaning) of every mark the timeline draws, for the legend beside it."""
    return [
        ("utterances", UTTERANCE_COLOUR, "a bar from the first to the last sample the bench played"),
        ("answers", ANSWER_COLOUR, "a bar over the device's spoken answer as the bench heard it"),
        ("activations", ACTIVATION_COLOUR, "a bar while the device streamed a request to the voice service"),
        *(
            (f"contact: {name}", colour, f"a tick per contact of an endpoint in that row; {CATEGORY_MEANING[name]}")
            for name, colour in CATEGORY_COLOURS.items()
        ),
    ]


def timeline_figure(tables: dict[str, pd.DataFrame]) -> Figure:
    """Rows top to bottom: utterances, answers, activations, then the busiest endpoints."""
    utterances = tables["utterances"].assign(
        onset_capture=tables["utterances"]["onset_capture_ns"] / 1e9,
        length=(tables["utterances"]["end_ns"] - tables["utterances"]["onset_ns"]) / 1e9,
        answer_after=(tables["utterances"]["answer_onset_ns"] - tables["utterances"]["onset_ns"]).astype("Float64")
        / 1e9,
    )
    activations = tables["activations"].assign(
        onset=tables["activations"]["onset_capture_ns"] / 1e9, end=tables["activations"]["end_capture_ns"] / 1e9
    )
    contacts = tables["contacts"].assign(
        onset=tables["contacts"]["onset_capture_ns"] / 1e9, endpoint=tables["contacts"]["endpoint_id"]
    )
    starts = [s.min() for s in (utterances["onset_capture"], activations["onset"], contacts["onset"]) if len(s)]
    zero = min(starts) if starts else 0.0
    counts = contacts["endpoint"].value_counts(sort=False) if len(contacts) else pd.Series(dtype=int)
    first = contacts.groupby("endpoint")["onset"].min() if len(contacts) else pd.Series(dtype=float)
    endpoints = sorted(counts.index, key=lambda e: (-counts[e], first[e]))[:MAX_ROWS]
    endpoints.sort(key=lambda e: first[e])
    labels = ["utterances", "answers", "activations", *(_short(e) for e in endpoints)]
    figure = Figure(figsize=(11, 1.2 + 0.28 * len(labels)))
    axes = figure.add_subplot()
    y = {label: len(labels) - 1 - i for i, label in enumerate(labels)}
    for row in utterances.itertuples(index=False):
        if pd.notna(row.onset_capture):
            length = max(row.length, 0.05)
            axes.broken_barh(
                [(row.onset_capture - zero, length)], (y["utterances"] - 0.35, 0.7), color=UTTERANCE_COLOUR
            )
            if pd.notna(row.answer_after):
                start = row.onset_capture + row.answer_after - zero
                axes.broken_barh(
                    [(start, max(row.answer_duration_s or 0.05, 0.05))], (y["answers"] - 0.35, 0.7), color=ANSWER_COLOUR
                )
    for row in activations.itertuples(index=False):
        axes.broken_barh(
            [(row.onset - zero, max(row.end - row.onset, 0.05))],
            (y["activations"] - 0.35, 0.7),
            color=ACTIVATION_COLOUR,
        )
    if len(contacts):
        shown = contacts[contacts["endpoint"].isin(endpoints)]
        for category, group in shown.groupby("category"):
            rows = [y[_short(e)] for e in group["endpoint"]]
            axes.scatter(group["onset"] - zero, rows, marker="|", s=120, color=CATEGORY_COLOURS.get(category, "#000"))
    axes.set_yticks(range(len(labels)), [plain(label) for label in reversed(labels)], fontsize=8)
    axes.set_xlabel("seconds since the first event (capture clock)")
    axes.grid(axis="x", alpha=0.3)
    handles = [Patch(color=colour, label=name) for name, colour, _ in legend_items()]
    axes.legend(handles=handles, loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=5, fontsize=8, frameon=False)
    figure.tight_layout()
    return figure
