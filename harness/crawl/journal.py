"""How a visit's rows reach the crawl's tables exactly once, whenever the crawler is killed.

A finished visit is first written whole to ``pending/<persona>-<site>.json`` (atomically), then
appended table by table (one batch, one fsync each), its Visit record last, and the pending
file removed. A visit is done exactly when its Visit record is on disk. A crawl killed during a
visit loses that visit's rows (nothing of it reached the tables) and visits the site again as
its next attempt; one killed while committing leaves the pending file, and the resume appends
just the rows the tables lack, then the Visit. So every table holds each done visit's rows
once, and rows of no other visit: no duplicate reaches ``harness ads``.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from harness.crawl.layout import STARTS, TABLES, VISITS, CrawlDir
from harness.errors import InputError
from harness.files import atomic_write_text
from harness.jsonl import JsonlLog, read_jsonl


class Journal:
    """The crawl's open tables; commits visits and replays those a kill interrupted."""

    def __init__(self, crawl: CrawlDir) -> None:
        self.crawl = crawl
        crawl.create()
        self._logs = {name: JsonlLog(crawl.table(name)) for name in (*TABLES, VISITS, STARTS)}

    def close(self) -> None:
        for log in self._logs.values():
            log.close()

    def done(self) -> dict[str, dict[str, Any]]:
        """The Visit records on disk, by visit id."""
        return {v["visit_id"]: v for v in read_jsonl(self.crawl.table(VISITS)) if "visit_id" in v}

    def attempts(self) -> Counter[str]:
        """How many times each visit has started."""
        return Counter(s["visit_id"] for s in read_jsonl(self.crawl.table(STARTS)) if "visit_id" in s)

    def start(self, visit_id: str, attempt: int, time_ns: int) -> None:
        self._logs[STARTS].append({"visit_id": visit_id, "attempt": attempt, "time_ns": time_ns})

    def commit(self, visit: dict[str, Any], rows: dict[str, list[dict[str, Any]]]) -> None:
        """Write a finished visit: pending file, each table's rows, the Visit, pending removed."""
        pending = self.crawl.pending_visit(visit["persona"], visit["site_index"])
        atomic_write_text(pending, json.dumps({"visit": visit, "rows": rows}, ensure_ascii=False))
        self._apply(visit, rows, Counter())
        pending.unlink()

    def _apply(self, visit: dict[str, Any], rows: dict[str, list[dict[str, Any]]], present: Counter) -> None:
        for table in TABLES:
            self._logs[table].extend(rows.get(table, [])[present[table] :])
        self._logs[VISITS].append(visit)

    def recover(self) -> int:
        """Finish the commits a kill interrupted; returns how many visits were completed."""
        pending = {}
        for path in sorted(self.crawl.pending.glob("*.json")):
            try:
                data = json.loads(path.read_bytes())
                visit, rows = data["visit"], data["rows"]
            except (OSError, ValueError, KeyError, TypeError) as exc:
                raise InputError(path, f"damaged pending visit: {exc}") from None
            pending[visit["visit_id"]] = (path, visit, rows)
        done = self.done()
        finished = 0
        if pending:
            present = self._present(set(pending) - set(done))
            for visit_id, (path, visit, rows) in pending.items():
                if visit_id not in done:
                    self._apply(visit, rows, present[visit_id])
                    finished += 1
                path.unlink()
        return finished

    def _present(self, visit_ids: set[str]) -> dict[str, Counter]:
        """Rows of these visits already in each table (a batch cut short keeps its first rows)."""
        counts: dict[str, Counter] = {visit_id: Counter() for visit_id in visit_ids}
        for table in TABLES:
            for row in read_jsonl(self.crawl.table(table)):
                if row.get("visit_id") in counts:
                    counts[row["visit_id"]][table] += 1
        return counts
