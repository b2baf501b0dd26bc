"""Cost and accuracy of cookie-sync detection on a synthetic crawl, against a baseline in the same run.

Method: a seeded synthetic crawl (PERSONAS personas x VISITS visits x REQUESTS requests, cookies and
storage writes per visit) with planted syncs (an ad server's id cookie redirected to a partner, in
every visit) among look-alikes (the page's query value, timestamps in s/ms, a constant every
persona gets, cache busters, same-domain ids). Detection time is measured in ROUNDS paired runs
beside the baseline: splitting the same requests' URL, referrer and body into tokens once, the
least any detector that reads every request must do. Reported: median time of each, the ratio of
the paired medians, requests per second and the 95th percentile of the ratio; precision and
recall of the pairs against the planted ones.

Run: .venv/bin/python benchmarks/crawl_sync.py [--visits 200] [--rounds 5]
"""

from __future__ import annotations

import argparse
import random
import statistics
import string
import time

from harness.crawl.identifiers import tokens, url_tokens
from harness.crawl.records import CookieWrite, Request, StorageWrite
from harness.crawl.sync import find_syncs

PERSONAS = ("health", "dating", "vanilla")
T0 = 1_700_000_000 * 10**9
PARTNERS = ("adnxs.com", "openx.net", "pubmatic.com")


def crawl(visits: int, requests_per_visit: int, seed: int):
    rng = random.Random(seed)
    constant = "".join(rng.choices(string.hexdigits, k=20))
    requests, cookies, storage, planted = [], [], [], set()
    for persona in PERSONAS:
        ident = "".join(rng.choices("0123456789abcdef", k=20))
        for index in range(visits):
            page = "".join(rng.choices(string.ascii_lowercase + string.digits, k=16))
            site = f"https://site{index}.example/story?ref={page}"
            now = T0 + index * 60 * 10**9
            common = {"visit_id": f"{persona}/{index}", "persona": persona, "site": site}
            partner = PARTNERS[index % len(PARTNERS)]
            hop = "https://s.amazon-adsystem.com/ecm3"
            visit = [
                (site, {"resource_type": "document"}),
                (hop, {"status": 302}),
                (f"https://sync.{partner}/setuid?amzn={ident}", {"redirected_from": hop}),
            ]
            planted.add((persona, partner))
            for _ in range(requests_per_visit - len(visit)):
                noise = rng.choice(
                    [page, str(now // 10**9), str(now // 10**6), constant, "".join(rng.choices(string.hexdigits, k=16))]
                )
                host = rng.choice(["ib.adnxs.com", "cdn.example-cdn.com", "rtb.openx.net", "c.amazon-adsystem.com"])
                visit.append((f"https://{host}/px?v={noise}&cb={rng.randrange(10**6)}", {"referrer": site}))
            for seq, (url, fields) in enumerate(visit):
                requests.append(Request(**common, seq=seq, time_ns=now + seq, url=url, method="GET", **fields))
            cookies.append(
                CookieWrite(
                    **common, time_ns=now, source="http", domain=".amazon-adsystem.com", name="ad-id", value=ident
                )
            )
            storage.append(
                StorageWrite(**common, time_ns=now, origin=site, area="local", key="meta", value=f"{page}|{constant}")
            )
    return requests, cookies, storage, planted


def baseline(requests: list[Request]) -> int:
    found = 0
    for request in requests:
        found += len(url_tokens(request.url)) + len(url_tokens(request.referrer)) + len(tokens(request.post_data))
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--visits", type=int, default=200, help="visits per persona (default 200)")
    parser.add_argument("--requests", type=int, default=60, help="requests per visit (default 60)")
    parser.add_argument("--rounds", type=int, default=5, help="paired runs (default 5)")
    args = parser.parse_args()
    requests, cookies, storage, planted = crawl(args.visits, args.requests, seed=0)
    detect_s, base_s = [], []
    for _ in range(args.rounds):
        start = time.perf_counter()
        result = find_syncs(requests, cookies, storage)
        detect_s.append(time.perf_counter() - start)
        start = time.perf_counter()
        baseline(requests)
        base_s.append(time.perf_counter() - start)
    ratios = sorted(d / b for d, b in zip(detect_s, base_s, strict=True))
    found = {(p.persona, p.receiver) for p in result.pairs}
    senders = {p.sender for p in result.pairs}
    true = found & planted
    print(f"crawl: {len(PERSONAS)} personas x {args.visits} visits, {len(requests)} requests, {len(cookies)} cookies")
    print(
        f"detection median {statistics.median(detect_s):.3f} s ({len(requests) / statistics.median(detect_s):,.0f}"
        f" requests/s); baseline (tokenising only) median {statistics.median(base_s):.3f} s"
    )
    p95 = ratios[min(len(ratios) - 1, int(0.95 * len(ratios)))]
    print(f"ratio detection/baseline: median {statistics.median(ratios):.2f}x, p95 {p95:.2f}x over {args.rounds} runs")
    print(
        f"pairs: {len(result.pairs)}; (persona, receiver) found {len(found)}, planted {len(planted)}; "
        f"precision {len(true) / max(1, len(found)):.3f}, recall {len(true) / len(planted):.3f}; "
        f"senders {sorted(senders)}"
    )


if __name__ == "__main__":
    main()
