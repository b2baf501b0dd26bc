"""The campaign: three personas with two synthetic runs each (real pcaps from harness.net.synth,
event logs from the bench's EventLog), one crawl directory and one bid file; the status, the
dataset and the study's tables against numbers worked out from what the scene wrote.
Everything runs on a real local Dask cluster (worker processes)."""

from __future__ import annotations

import fcntl
import json
import os
import statistics
import sys
import time
from pathlib import Path

import cloudpickle
import pandas as pd
import pytest
from campaign_scene import SPACING_S, Written, write_run

from harness.campaign import dataset, engine, manifest, status, study
from harness.campaign.engine import Engine
from harness.cli.main import main
from harness.correlate import capture
from harness.errors import HarnessError

T0 = 1_760_000_000 * 10**9
HOUR = 3600 * 10**9
DOUBLECLICK, LOVEMATCH = "pubads.g.doubleclick.net", "api.lovematch.io"
SKILLS = {
    "fitness": [("fit", DOUBLECLICK), ("quiet", None)] * 4,
    "dating": [("date", LOVEMATCH), ("chat", None)] * 4,
    "vanilla": [("weather", None), ("news", None)] * 4,
}
# bids: (persona, hours after T0, bidder, cpm); fitness before its first utterance, then after
FITNESS_BEFORE = [1.0, 1.2, 0.8, 1.1, 0.9, 1.0]
FITNESS_AFTER = [2.0, 2.2, 1.8, 2.1, 1.9, 2.0]
CONTROL = [1.0, 1.1, 0.9, 1.05, 0.95, 1.0, 1.2, 0.8, 1.0, 1.1, 0.9, 1.0]
DATING = [1.5, 1.4, 1.6, 1.5, 1.5, 1.5]
BIDDERS = ["rubicon", "appnexus"]


def _iso(ns: int) -> str:
    return pd.Timestamp(ns, unit="ns", tz="UTC").isoformat()


def _bid_rows() -> list[dict]:
    rows = []
    for i, cpm in enumerate(FITNESS_BEFORE):
        rows.append(("fitness", T0 - HOUR + i * 10**9, BIDDERS[i % 2], cpm))
    for i, cpm in enumerate(FITNESS_AFTER):
        rows.append(("fitness", T0 + 3 * HOUR + i * 10**9, BIDDERS[i % 2], cpm))
    for i, cpm in enumerate(DATING):
        rows.append(("dating", T0 + 3 * HOUR + i * 10**9, BIDDERS[i % 2], cpm))
    return [
        {"persona": p, "site": "https://news.example", "visit_time": _iso(t), "bidder": b, "cpm": c, "currency": "USD"}
        for p, t, b, c in rows
    ]


def _crawl(folder: Path) -> None:
    """A crawl directory: visits of fitness and vanilla, a sync pair of fitness, the control's bids."""
    folder.mkdir()
    visit = {"site": "https://news.example", "profile": "p", "started_ns": T0, "ended_ns": T0 + 10**9,
             "status": "ok", "prebid": True, "auction": "ran"}  # fmt: skip
    visits = [
        {"visit_id": f"{p}/{i}", "persona": p, "site_index": i, **visit}
        for p in ("fitness", "vanilla")
        for i in range(2)
    ]
    (folder / "visits.jsonl").write_text("".join(json.dumps(v) + "\n" for v in visits))
    pair = {"visit_id": "fitness/0", "persona": "fitness", "site": "https://news.example", "time_ns": T0,
            "identifier": "abc123", "sender": "rubiconproject.com", "receiver": "example.org", "carrier": "url",
            "request_url": "https://example.org/sync?id=abc123"}  # fmt: skip
    (folder / "sync.jsonl").write_text(json.dumps(pair) + "\n")
    bids = [
        {"persona": "vanilla", "site": "https://news.example", "visit_time": _iso(T0 + 3 * HOUR + i * 10**9),
         "bidder": BIDDERS[i % 2], "cpm": cpm, "currency": "USD"}
        for i, cpm in enumerate(CONTROL)
    ]  # fmt: skip
    (folder / "bids.jsonl").write_text("".join(json.dumps(b) + "\n" for b in bids))


@pytest.fixture(scope="module")
def scene(tmp_path_factory) -> dict:
    base = tmp_path_factory.mktemp("campaign")
    written: dict[str, list[Written]] = {}
    for persona, skills in SKILLS.items():
        first = write_run(base / f"{persona}-1", persona, T0, skills, [True] * 8)
        broken = persona == "dating"
        second = write_run(
            base / f"{persona}-2", persona, T0 + 2 * HOUR, skills, [True, True] + [not broken] * 6,
            finished=not broken, device_lost=broken,
        )  # fmt: skip
        written[persona] = [first, second]
    _crawl(base / "crawl")
    bids = base / "bids.csv"
    pd.DataFrame(_bid_rows()).to_csv(bids, index=False)
    folder = base / "study"
    assert main(["campaign", "init", str(folder)]) == 0
    for persona, runs in written.items():
        args = ["campaign", "add", str(folder), "--persona", persona, "--device", "192.168.7.2"]
        args += [a for w in runs for a in ("--run", str(w.path))]
        args += ["--crawl", str(base / "crawl")] if persona in ("fitness", "vanilla") else []
        args += ["--ads", str(bids)] if persona != "vanilla" else []
        args += ["--control"] if persona == "vanilla" else []
        assert main(args) == 0
    folder_dir, campaign = manifest.load(folder)
    result = dataset.update(folder_dir, campaign, Engine(workers=2))
    return {"base": base, "folder": folder_dir, "campaign": campaign, "written": written, "first": result}


def test_manifest_lists_personas_benches_sources_and_the_control(scene) -> None:
    campaign = scene["campaign"]
    assert [p.id for p in campaign.personas] == ["fitness", "dating", "vanilla"]
    assert campaign.control == "vanilla"
    fitness = campaign.persona("fitness")
    assert len(fitness.runs) == 2 and len(fitness.crawls) == 1 and len(fitness.ads) == 1
    assert fitness.bench.device == "192.168.7.2"


def test_status_counts_gaps_and_failures(scene, capsys) -> None:
    report = status.campaign_status(scene["folder"], scene["campaign"], gap_s=200)
    by = {p.persona: p for p in report.personas}
    run_hours = 9 * SPACING_S / 3600  # 8 utterances a minute apart, captured a minute more
    for p in by.values():
        assert p.spoken == 16
        assert p.capture_hours == pytest.approx(2 * run_hours, abs=1e-3)
        assert p.verified is None  # no answer event carries a check
        capture_gaps = [g for g in p.gaps if g.kind == "capture"]
        assert len(capture_gaps) == 1
        assert capture_gaps[0].from_ns == T0 + 9 * SPACING_S * 10**9 and capture_gaps[0].to_ns == T0 + 2 * HOUR
    assert by["fitness"].answered == 16 and by["vanilla"].answered == 16 and by["dating"].answered == 10
    assert by["fitness"].failures == [] and by["vanilla"].failures == []
    assert [g.kind for g in by["fitness"].gaps] == ["capture"]
    # dating's second run: answers stopped after its second utterance, its speaker was lost, it never finished
    answers = [g for g in by["dating"].gaps if g.kind == "answers"]
    second = scene["written"]["dating"][1].onsets_ns
    assert [(g.from_ns, g.to_ns) for g in answers] == [(second[1] + 3 * 10**9, second[-1])]
    assert len(by["dating"].failures) == 2
    assert any("device - lost" in f for f in by["dating"].failures)
    assert any("never finished (status interrupted)" in f for f in by["dating"].failures)
    assert main(["campaign", "status", str(scene["folder"].root), "--format", "json", "--gap", "200"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert [p["answered"] for p in doc["personas"]] == [16, 10, 16]


def test_dataset_partitions_hold_what_each_source_wrote(scene) -> None:
    first = scene["first"]
    assert first.failed == [] and len(first.built) == 3 * 2 + 2 + 2  # six runs, two crawl rows, two ad files
    con = dataset.connect(scene["folder"])
    counts = dict(con.sql("SELECT run, count(*) FROM utterances GROUP BY run").fetchall())
    assert counts == {w.path.name: 8 for runs in scene["written"].values() for w in runs}
    flows = dict(con.sql("SELECT run, count(*) FROM flows WHERE NOT service GROUP BY run").fetchall())
    assert flows == {w.path.name: w.flows for runs in scene["written"].values() for w in runs}
    for persona, runs in scene["written"].items():
        names = {
            n
            for (n,) in con.execute(
                "SELECT DISTINCT endpoint_id FROM endpoints WHERE persona = ?", [persona]
            ).fetchall()
        }
        assert names == set().union(*(w.names for w in runs))
    bids = dict(con.sql("SELECT persona, count(*) FROM bids GROUP BY persona").fetchall())
    assert bids == {"fitness": 12, "dating": 6, "vanilla": 12}
    visits = dict(con.sql("SELECT persona, count(*) FROM visits GROUP BY persona").fetchall())
    assert visits == {"fitness": 2, "vanilla": 2}
    # pandas reads the same table with the partition columns
    frame = dataset.load_table(scene["folder"], "utterances")
    assert len(frame) == 48 and set(frame["persona"]) == set(SKILLS)
    assert frame["onset_ns"].dtype == "int64"


def test_the_study_tables_match_the_scene(scene) -> None:
    con = dataset.connect(scene["folder"])
    result = study.study(con, "vanilla")
    orgs = result.organisations
    fit = orgs[(orgs["persona"] == "fitness") & (orgs["organization"] == "Google")]
    assert fit[["skill_id", "party", "ad_or_tracking", "runs", "evidence", "tries"]].values.tolist() == [
        ["fit", "third_party", True, 2, 8, 8]
    ]
    assert fit["p_value"].iloc[0] < 0.05
    assert not (
        (orgs["persona"] == "fitness") & (orgs["skill_id"] == "quiet") & (orgs["organization"] == "Google")
    ).any()
    date = orgs[(orgs["persona"] == "dating") & (orgs["skill_id"] == "date") & (orgs["organization"] == "lovematch.io")]
    assert date[["evidence", "tries"]].values.tolist() == [[8, 8]]
    assert orgs[orgs["persona"] == "vanilla"].empty  # nothing the control says reaches anyone
    third = result.third_parties
    pairs = {(r.persona, r.organization): bool(r.in_control) for r in third.itertuples()}
    assert pairs == {
        ("fitness", "Comscore"): True,
        ("fitness", "Google"): False,
        ("dating", "Comscore"): True,
        ("dating", "lovematch.io"): False,
        ("vanilla", "Comscore"): True,
    }
    flows = result.data_flows
    row = flows[(flows["persona"] == "fitness") & (flows["endpoint_id"] == DOUBLECLICK)]
    assert row[["skill_id", "domain", "party", "organization", "entity", "data_type"]].values.tolist() == [
        ["fit", "doubleclick.net", "third_party", "Google", "Google", "voice interaction"]
    ]
    bids = result.bids
    assert bids is not None and bids.control == "vanilla"
    fitness = next(c for c in bids.comparisons if c.persona == "fitness")
    assert (fitness.n, fitness.n_control) == (12, 12)
    expected = statistics.median(FITNESS_BEFORE + FITNESS_AFTER) / statistics.median(CONTROL)
    assert fitness.ratio == pytest.approx(expected)
    assert fitness.ratio_ci[0] <= fitness.ratio <= fitness.ratio_ci[1]
    assert {b.bidder for b in fitness.per_bidder or []} <= set(BIDDERS)
    split = next(r for r in bids.before_after if r.persona == "fitness")
    assert (split.n_before, split.n_after) == (6, 6)
    assert split.first_utterance_ns == T0 + SPACING_S * 10**9
    assert split.ratio == pytest.approx(statistics.median(FITNESS_AFTER) / statistics.median(FITNESS_BEFORE))
    partners = result.partners.set_index("persona")
    assert partners.loc["fitness", "partners"] == "rubicon"
    assert (partners.loc["fitness", "n_partner"], partners.loc["fitness", "n_other"]) == (6, 6)
    rubicon = [c for i, c in enumerate(FITNESS_BEFORE + FITNESS_AFTER) if i % 6 % 2 == 0]
    assert partners.loc["fitness", "median_cpm_partner"] == pytest.approx(statistics.median(rubicon))


def test_report_and_csv_tables(scene, capsys) -> None:
    root = scene["folder"].root
    assert main(["campaign", "report", str(root)]) == 0
    organisations = pd.read_csv(root / "tables" / "organisations.csv")
    assert "Google" in set(organisations["organization"])
    html = (root / "campaign.html").read_text()
    assert "<h1>Campaign study</h1>" in html and "lovematch.io" in html and "<script src" not in html
    capsys.readouterr()
    assert main(["campaign", "query", str(root), "SELECT count(*) AS n FROM bids", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out) == [{"n": 30}]


def test_a_new_run_adds_its_partition_and_a_changed_one_redoes_only_its_own(scene) -> None:
    folder = scene["folder"]
    extra = write_run(scene["base"] / "vanilla-3", "vanilla", T0 + 4 * HOUR, SKILLS["vanilla"], [True] * 8)
    _, campaign = manifest.load(folder.root)
    manifest.add_source(folder, campaign, "vanilla", "run", extra.path)
    manifest.save(folder, campaign)
    before = {p: (p / "utterances.parquet").stat().st_mtime_ns for p in dataset.partitions(folder)}
    result = dataset.update(folder, campaign, Engine(workers=2))
    assert [b.spec.key for b in result.built] == ["persona=vanilla/run=vanilla-3"]
    assert len(result.kept) == 10
    assert all((p / "utterances.parquet").stat().st_mtime_ns == t for p, t in before.items())
    # a changed input (the log of a resumed run) redoes its own partition only
    events = scene["written"]["fitness"][0].path / "events.jsonl"
    os.utime(events, ns=(time.time_ns(), time.time_ns()))
    result = dataset.update(folder, campaign, Engine(workers=2))
    assert [b.spec.key for b in result.built] == ["persona=fitness/run=fitness-1"]


def test_a_damaged_capture_fails_its_partition_only_and_keeps_its_last_version(tmp_path, capsys) -> None:
    good = write_run(tmp_path / "good", "a", T0, SKILLS["fitness"], [True] * 8)
    bad = write_run(tmp_path / "bad", "b", T0, SKILLS["dating"], [True] * 8)
    folder = manifest.init_campaign(tmp_path / "c")
    _, campaign = manifest.load(folder.root)
    manifest.add_source(folder, campaign, "a", "run", good.path)
    manifest.add_source(folder, campaign, "b", "run", bad.path)
    assert dataset.update(folder, campaign, Engine(workers=2, retries=1)).failed == []
    pcap = bad.path / "capture" / "capture.pcap"
    pcap.write_bytes(b"this is not a capture file at all" * 10)
    os.utime(good.path / "events.jsonl")  # both change: only the damaged one may fail
    manifest.save(folder, campaign)
    capsys.readouterr()
    assert main(["campaign", "analyse", str(folder.root), "--workers", "2", "--retries", "1", "--format", "json"]) == 1
    result = json.loads(capsys.readouterr().out)
    assert [b["partition"] for b in result["built"]] == ["persona=a/run=good"]
    assert [f["partition"] for f in result["failed"]] == ["persona=b/run=bad"]
    assert str(pcap) in result["failed"][0]["error"]
    con = dataset.connect(folder)  # the damaged run's previous partition is still there, whole
    assert dict(con.sql("SELECT persona, count(*) FROM utterances GROUP BY persona").fetchall()) == {"a": 8, "b": 8}
    assert not folder.staging.exists()


def test_a_running_scheduler_gets_the_same_work_and_one_update_runs_at_a_time(tmp_path, capsys) -> None:
    from dask.distributed import LocalCluster

    run = write_run(tmp_path / "r", "a", T0, SKILLS["fitness"], [True] * 8)
    folder = manifest.init_campaign(tmp_path / "c")
    _, campaign = manifest.load(folder.root)
    manifest.add_source(folder, campaign, "a", "run", run.path)
    manifest.save(folder, campaign)
    with LocalCluster(n_workers=2, processes=True, threads_per_worker=1, dashboard_address=":0") as cluster:
        capsys.readouterr()
        args = ["campaign", "analyse", str(folder.root), "--scheduler", cluster.scheduler_address, "--format", "json"]
        assert main(args) == 0
    assert [b["partition"] for b in json.loads(capsys.readouterr().out)["built"]] == ["persona=a/run=r"]
    assert dataset.load_table(folder, "utterances")["run"].tolist() == ["r"] * 8
    with open(folder.lock, "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        with pytest.raises(HarnessError, match="another update"):
            dataset.update(folder, campaign, Engine(workers=1), force=True)


def test_a_bad_crawl_record_names_its_file_and_line(tmp_path) -> None:
    crawl = tmp_path / "crawl"
    _crawl(crawl)
    lines = (crawl / "visits.jsonl").read_text().splitlines()
    lines[1] = lines[1].replace('"status": "ok"', '"status": "sideways"')
    (crawl / "visits.jsonl").write_text("\n".join(lines) + "\n")
    folder = manifest.init_campaign(tmp_path / "c")
    _, campaign = manifest.load(folder.root)
    manifest.add_source(folder, campaign, "fitness", "crawl", crawl)
    (spec,) = dataset.plan(folder, campaign)
    with pytest.raises(dataset.PartitionFailed, match=r"visits\.jsonl:2:1: not a valid record: status"):
        dataset.build(spec)
    assert not dataset.partition_dir(folder, spec).exists()


def test_a_bad_persona_id_is_one_line(tmp_path, capsys) -> None:
    assert main(["campaign", "init", str(tmp_path / "c")]) == 0
    assert main(["campaign", "add", str(tmp_path / "c"), "--persona", "a/b"]) == 1
    assert "not a usable persona id" in capsys.readouterr().err


# ----- the engine on a real local cluster ----------------------------------------------------------

cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the workers cannot import this test module


def _fails_once(marker: str) -> str:
    """Fails on its first call for ``marker`` (a worker hitting a transient fault, which cannot be
    caused on demand here: faked, and the only fake in this file), succeeds on the next."""
    path = Path(marker)
    if not path.exists():
        path.write_text("tried\n")
        raise OSError(f"{marker}: transient failure")
    return path.name


def _meet(folder: str) -> int:
    """Waits (up to a minute) until two different processes have called it: proof of two workers at once."""
    Path(folder, str(os.getpid())).touch()
    deadline = time.monotonic() + 60
    while len(os.listdir(folder)) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    return os.getpid()


def test_two_worker_processes_run_at_once(tmp_path) -> None:
    outcome = engine.run(Engine(workers=2), _meet, [("a", str(tmp_path)), ("b", str(tmp_path))])
    assert outcome.failed == []
    assert len(set(outcome.done)) == 2 and os.getpid() not in outcome.done


def test_a_failing_piece_is_retried_and_one_failing_always_is_reported(tmp_path) -> None:
    items = [(f"piece-{i}", str(tmp_path / f"m{i}")) for i in range(3)]
    outcome = engine.run(Engine(workers=2, retries=1), _fails_once, items)
    assert outcome.failed == [] and sorted(outcome.done) == ["m0", "m1", "m2"]
    fresh = [(f"again-{i}", str(tmp_path / f"n{i}")) for i in range(2)]
    outcome = engine.run(Engine(workers=2, retries=0), _fails_once, fresh)
    assert outcome.done == [] and sorted(k for k, _ in outcome.failed) == ["again-0", "again-1"]
    assert all("transient failure" in message for _, message in outcome.failed)


def _pid(_: object) -> int:
    return os.getpid()


def _pids_of(item: int, *pieces: int) -> list[int]:
    return [item, *pieces]


def test_pieces_of_an_item_are_tasks_of_their_own_on_the_workers() -> None:
    outcome = engine.run(Engine(workers=2), _pids_of, [("a", 7)], pieces=lambda item: [(_pid, n) for n in range(3)])
    assert outcome.failed == [] and outcome.done[0][0] == 7 and len(outcome.done[0]) == 4
    assert os.getpid() not in outcome.done[0][1:]


def test_a_run_of_two_capture_files_is_read_as_two_tasks_with_one_tasks_result(tmp_path, monkeypatch) -> None:
    written = write_run(tmp_path / "split-1", "fitness", T0, SKILLS["fitness"], [True] * 8, files=2)
    run = written.path
    folder = tmp_path / "study"
    assert main(["campaign", "init", str(folder)]) == 0
    assert (
        main(["campaign", "add", str(folder), "--persona", "fitness", "--device", "192.168.7.2", "--run", str(run)])
        == 0
    )
    folder_dir, campaign = manifest.load(folder)
    (spec,) = dataset.plan(folder_dir, campaign)
    read = dataset.pieces(spec)
    assert [Path(part.path).name for _, part in read] == ["capture.pcap", "capture-1.pcap"]
    assert dataset.update(folder_dir, campaign, Engine(workers=2)).failed == []
    tasks = dataset.load_table(folder_dir, "flows").drop(columns=["persona", "run"], errors="ignore")
    # one task reading both files itself
    one, _ = dataset._run_tables(run, "192.168.7.2", [])
    pd.testing.assert_frame_equal(
        tasks.sort_values("first_capture_ns").reset_index(drop=True),
        one["flows"].sort_values("first_capture_ns").reset_index(drop=True),
        check_dtype=False,
        check_categorical=False,
    )
    assert (~tasks["service"]).sum() == written.flows  # contacts and background fetches, across both files
    # given the pieces' results, building puts them together instead of reading the captures again
    pieces = [dataset.read_piece(part) for _, part in read]
    monkeypatch.setattr(capture, "read_capture", None)
    from_pieces, _ = dataset._run_tables(run, "192.168.7.2", pieces)
    pd.testing.assert_frame_equal(from_pieces["flows"], one["flows"])


def test_the_docs_show_the_datasets_schema_as_defined(repo: Path) -> None:
    from harness.campaign.schema import TABLES, markdown

    assert markdown() in (repo / "docs" / "campaign.md").read_text(encoding="utf-8")
    assert {"utterances", "flows", "bids", "sync", "visits"} <= set(TABLES)
