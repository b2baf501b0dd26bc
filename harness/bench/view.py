"""What a run shows while it goes: a live rich view on a terminal, plain lines otherwise."""

from __future__ import annotations

from rich.console import Console, Group
from rich.live import Live
from rich.panel import Panel
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from harness.rundir.events import AnswerChecked
from harness.script import PlanItem
from harness.script.duration import clock_text
from harness.textsafe import terminal_text


class RunView:
    """Progress bar with the plan's estimate of the time left, and a panel (persona, skill,
    utterance, status, last answer, last answer check and how many reached their skill).

    ``left_s`` maps each plan item still to do to its estimated seconds (the estimate of
    ``harness plan``). When the console is not a terminal each change of item or answer is one
    plain line, so logs of unattended runs stay readable.
    """

    def __init__(self, console: Console, total: int, done: int, left_s: dict[int, float]) -> None:
        self.console = console
        self.total = total
        self.live_mode = console.is_terminal
        self._left = dict(left_s)
        self._fields = {
            "persona": "",
            "skill": "",
            "utterance": "",
            "status": "starting",
            "last answer": "-",
            "answer check": "-",
            "reached skill": "-",
        }
        self._checked = {"matched": 0, "not_matched": 0}
        self._progress = Progress(
            TextColumn("[bold]run"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("{task.fields[left]}"),
            console=console,
        )
        self._task = self._progress.add_task("run", total=total, completed=done, left=self._left_text())
        self._live = Live(self._render(), console=console, refresh_per_second=4) if self.live_mode else None

    def __enter__(self) -> RunView:
        if self._live:
            self._live.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._live:
            self._live.update(self._render())
            self._live.stop()

    def _render(self) -> Group:
        table = Table.grid(padding=(0, 2))
        for key, value in self._fields.items():
            table.add_row(Text(key, style="bold"), Text(terminal_text(value)))
        return Group(Panel(table, title="harness run"), self._progress)

    def _refresh(self) -> None:
        if self._live:
            self._live.update(self._render())

    def item(self, item: PlanItem, persona_name: str) -> None:
        self._fields.update(
            persona=f"{persona_name} ({item.persona_id})",
            skill=item.skill_name,
            utterance=f"{item.utterance_id} #{item.repeat}: {item.text}",
        )
        if self.live_mode:
            self._refresh()
        else:
            line = f"[{item.index + 1}/{self.total}] {item.persona_id} {item.utterance_id}: {item.text}"
            self.console.print(terminal_text(line), markup=False, highlight=False, soft_wrap=True)

    def status(self, text: str) -> None:
        self._fields["status"] = text
        self._refresh()

    def answer(self, text: str) -> None:
        self._fields["last answer"] = text
        if self.live_mode:
            self._refresh()
        else:
            self.console.print(f"    {terminal_text(text)}", markup=False, highlight=False, soft_wrap=True)

    def turn(self, text: str) -> None:
        """A retry or a follow-up of the current item (its text), or a follow-up skipped."""
        self._fields["utterance"] = text
        if self.live_mode:
            self._refresh()
        else:
            self.console.print(f"  {terminal_text(text)}", markup=False, highlight=False, soft_wrap=True)

    def checked(self, check: AnswerChecked) -> None:
        """An answer check came in (from the checker's thread)."""
        if check.result in self._checked:
            self._checked[check.result] += 1
        matched, missed = self._checked["matched"], self._checked["not_matched"]
        what = check.result.replace("_", " ") + (f" ({check.matched_by})" if check.matched_by else "")
        line = (
            f'check of {check.utterance_id} turn {check.turn} try {check.attempt}: {what}; heard "{check.transcript}"'
        )
        self._fields["answer check"] = line
        self._fields["reached skill"] = f"{matched} of {matched + missed} answers checked against an expect"
        if self.live_mode:
            self._refresh()
        else:
            self.console.print(f"    {terminal_text(line)}", markup=False, highlight=False, soft_wrap=True)

    def note(self, text: str) -> None:
        """A message that stays (device lost, interrupted, ...)."""
        self.console.print(terminal_text(text), markup=False, highlight=False, soft_wrap=True)

    def advance(self, index: int) -> None:
        """Plan item ``index`` is done."""
        self._left.pop(index, None)
        self._progress.update(self._task, advance=1, left=self._left_text())
        self._refresh()

    def _left_text(self) -> str:
        return f"about {clock_text(sum(self._left.values()))} left (plan estimate, at most)"
