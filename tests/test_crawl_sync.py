"""Cookie-sync detection on hand-built crawl records: planted syncs found, negatives never paired."""

from __future__ import annotations

import json
import random
import string
import uuid

import pytest

from harness.crawl.identifiers import tokens, why_not
from harness.crawl.records import CookieWrite, Request, StorageWrite
from harness.crawl.sync import find_syncs, partners_of, site_domain

T0 = 1_700_000_000 * 10**9  # 2023-11-14
SITE = "https://news.example/story?article=1234"


class Visit:
    """Records of one visit, numbered as a browser would see them."""

    def __init__(self, persona: str, index: int, site: str = SITE) -> None:
        self.persona, self.site = persona, site
        self.visit_id = f"{persona}/{index}"
        self.time_ns = T0 + index * 60 * 10**9
        self.requests: list[Request] = []
        self.cookies: list[CookieWrite] = []
        self.storage: list[StorageWrite] = []
        self.request(site, resource_type="document")

    def _common(self) -> dict:
        self.time_ns += 10**6
        return {"visit_id": self.visit_id, "persona": self.persona, "site": self.site, "time_ns": self.time_ns}

    def request(self, url: str, **fields) -> Request:
        fields.setdefault("method", "POST" if fields.get("post_data") else "GET")
        fields.setdefault("referrer", self.site)
        request = Request(**self._common(), seq=len(self.requests), url=url, **fields)
        self.requests.append(request)
        return request

    def cookie(self, domain: str, name: str, value: str, source: str = "js") -> None:
        self.cookies.append(CookieWrite(**self._common(), source=source, domain=domain, name=name, value=value))

    def store(self, origin: str, key: str, value: str) -> None:
        self.storage.append(StorageWrite(**self._common(), origin=origin, area="local", key=key, value=value))


def syncs(*visits: Visit):
    return find_syncs(
        [r for v in visits for r in v.requests],
        [c for v in visits for c in v.cookies],
        [s for v in visits for s in v.storage],
    )


def found(result) -> set[tuple[str, str, str, str, str]]:
    return {(p.persona, p.identifier, p.sender, p.receiver, p.carrier) for p in result.pairs}


def uid() -> str:
    return uuid.uuid4().hex[:20]


# ----- planted syncs ------------------------------------------------------------------------------


def test_a_redirect_sync_with_the_senders_cookie_is_found() -> None:
    visits = []
    for persona in ("health", "vanilla"):
        visit = Visit(persona, 0)
        ident = uid()
        sync = visit.request(
            "https://s.amazon-adsystem.com/ecm3?ex=appnexus",
            status=302,
            set_cookies=[f"ad-id={ident}; Domain=.amazon-adsystem.com; Path=/; Secure"],
        )
        visit.request(f"https://ib.adnxs.com/setuid?entity=amzn&code={ident}", redirected_from=sync.url)
        visits.append((visit, ident))
    result = syncs(*(v for v, _ in visits))
    assert found(result) == {(v.persona, ident, "amazon-adsystem.com", "adnxs.com", "redirect") for v, ident in visits}
    pair = result.pairs[0]
    assert pair.visit_id == "health/0" and pair.request_url.startswith("https://ib.adnxs.com/setuid")


def test_a_redirect_chain_carries_the_id_to_every_hop() -> None:
    """Amazon -> AppNexus -> Rubicon: both receivers got Amazon's id by redirect (AppNexus passed it on)."""
    visits = []
    for persona in ("health", "vanilla"):
        visit, ident = Visit(persona, 0), uid()
        visit.cookie(".amazon-adsystem.com", "ad-id", ident, source="http")
        first = visit.request("https://s.amazon-adsystem.com/iu3", status=302)
        second = visit.request(f"https://ib.adnxs.com/getuid?partner_uid={ident}", redirected_from=first.url)
        visit.request(f"https://pixel.rubiconproject.com/sync.php?uid={ident}", redirected_from=second.url)
        visit.request(f"https://rtb.openx.net/later?u={ident}")  # no redirect: a plain URL carrier
        visits.append(visit)
    assert {(p.persona, p.receiver, p.carrier) for p in syncs(*visits).pairs} == {
        (persona, receiver, carrier)
        for persona in ("health", "vanilla")
        for receiver, carrier in (("adnxs.com", "redirect"), ("rubiconproject.com", "redirect"), ("openx.net", "url"))
    }


def test_a_url_parameter_sync_of_a_script_cookie_is_found() -> None:
    health, vanilla = Visit("health", 0), Visit("vanilla", 0)
    for visit in (health, vanilla):
        ident = "Ab3" + uid()
        visit.cookie(".criteo.com", "cto_bundle", f"v=2&id={ident}&ts={T0 // 10**9}")
        visit.request(f"https://pixel.rubiconproject.com/tap.php?v=7751&nid=2307&put={ident}&expires=30")
    result = syncs(health, vanilla)
    assert {(p.persona, p.sender, p.receiver, p.carrier) for p in result.pairs} == {
        ("health", "criteo.com", "rubiconproject.com", "url"),
        ("vanilla", "criteo.com", "rubiconproject.com", "url"),
    }


def test_referrer_and_post_body_carry_identifiers() -> None:
    visits = []
    for persona in ("health", "vanilla"):
        visit = Visit(persona, 0)
        frame_id, body_id = uid(), str(uuid.uuid4())
        visit.cookie("sync.openx.net", "i", f"{frame_id}|{T0 // 10**6}")
        visit.store("https://news.example", "_pubcid", body_id)  # a first-party id kept by a script
        visit.request("https://u.openx.net/w/1.0/pd?ph=abc", referrer=f"https://sync.openx.net/frame#uid={frame_id}")
        visit.request(
            "https://c.pubmatic.com/ping",
            referrer=f"https://sync.openx.net/frame#uid={frame_id}",
        )
        visit.request(
            "https://hbopenbid.pubmatic.com/translator?source=prebid",
            post_data=json.dumps({"user": {"ext": {"eids": [{"source": "pubcid.org", "uids": [{"id": body_id}]}]}}}),
        )
        visits.append(visit)
    assert {(p.persona, p.sender, p.receiver, p.carrier) for p in syncs(*visits).pairs} == {
        (persona, sender, "pubmatic.com", carrier)
        for persona in ("health", "vanilla")
        for sender, carrier in (("openx.net", "referrer"), ("news.example", "body"))
    }


def test_the_classic_shape_needs_no_cookie_only_a_redirect_that_inserts_the_id() -> None:
    """X's server puts its id (from a cookie the crawler never saw) into the redirect to Y; the id
    comes back in a second visit, so it is no per-request nonce."""
    visits = []
    for persona in ("health", "vanilla"):
        ident = uid()
        for index in range(2):
            visit = Visit(persona, index)
            hop = visit.request("https://x.bidswitch.net/sync?ssp=adform", status=302)
            visit.request(f"https://cm.adform.net/cm?bsw={ident}", redirected_from=hop.url, status=302)
            visits.append(visit)
    result = syncs(*visits)
    assert {(p.persona, p.visit_id, p.sender, p.receiver, p.carrier) for p in result.pairs} == {
        (persona, f"{persona}/{i}", "bidswitch.net", "adform.net", "redirect")
        for persona in ("health", "vanilla")
        for i in range(2)
    }


def test_the_redirect_inserter_is_the_hop_before_the_id_first_appears() -> None:
    visits = []
    for persona in ("health", "vanilla"):
        ident = uid()
        for index in range(2):
            visit = Visit(persona, index)
            first = visit.request("https://sync.taboola.com/sg?go=1", status=302)
            second = visit.request(f"https://ssum.casalemedia.com/usermatch?tb={ident}", redirected_from=first.url)
            visit.request(f"https://dsum.casalemedia.com/rum?cm_dsp_id=7&external_user_id={ident}",
                          redirected_from=second.url)  # fmt: skip
            visits.append(visit)
    senders = {(p.sender, p.receiver) for p in syncs(*visits).pairs}
    assert senders == {("taboola.com", "casalemedia.com")}


# ----- negatives: none of these is a sync ----------------------------------------------------------


def negative_visits(persona: str, index: int, shared_constant: str, rng: random.Random) -> Visit:
    """One visit full of look-alikes: each travels from one domain to another, none is an id."""
    page_value = "".join(rng.choices(string.ascii_lowercase + string.digits, k=16))
    visit = Visit(persona, index, site=f"https://news.example/story?ref={page_value}")
    now_s = visit.time_ns // 10**9
    values = {
        "page": page_value,  # the page URL's own query value, copied by a script
        "seconds": str(now_s - rng.randrange(10**6)),
        "millis": str(visit.time_ns // 10**6 + rng.randrange(10**6)),
        "micros": str(visit.time_ns // 10**3),
        "constant": shared_constant,  # the same for every persona
        "short": "".join(rng.choices(string.hexdigits, k=rng.randrange(4, 10))),
        "repeated": rng.choice("0123456789abcdef") * 5 + rng.choice("0123456789") * 5,
        "word": rng.choice(["advertising", "undefined-value", "PrebidAnalytics", "TRUE_FALSE_NULL"]),
    }
    composite = "&".join(f"{k}={v}" for k, v in values.items()) + "&iso=2023-11-14T22:13:20.000Z"
    visit.cookie(".criteo.com", "meta", composite)
    visit.store("https://news.example", "meta", composite)
    for value in values.values():
        visit.request(f"https://ib.adnxs.com/getuid?v={value}")
        visit.request("https://hbopenbid.pubmatic.com/translator", post_data=f'{{"v": "{value}"}}')
        visit.request("https://c.amazon-adsystem.com/e/dtb", referrer=f"https://static.criteo.net/f?v={value}")
    visit.request("https://x.bidswitch.net/sync", status=302)  # a redirect that inserts look-alikes
    for value in values.values():
        visit.request(f"https://cm.adform.net/cm?v={value}", redirected_from="https://x.bidswitch.net/sync")
    own = uid()  # a real id, sent only within its own registrable domain
    visit.cookie(".adnxs.com", "uuid2", own)
    visit.request(f"https://secure.adnxs.com/px?uid={own}")
    visit.request(f"https://acdn.adnxs.com/ast?u={own}", referrer=f"https://ib.adnxs.com/f?u={own}")
    consent = "CP" + uid() + uid()  # a consent string differs per user, identifies nobody
    visit.cookie(".news.example", "euconsent-v2", consent)
    visit.request(f"https://ib.adnxs.com/ut?gdpr=1&gdpr_consent={consent}")
    visit.request(
        "https://hbopenbid.pubmatic.com/translator", post_data=f'{{"gdpr": {{"consentString": "{consent}"}}}}'
    )
    hop = visit.request("https://sync.taboola.com/sg", status=302)  # a cache buster: new on every hop
    visit.request(f"https://ssum.casalemedia.com/usermatch?cb={uid()}", redirected_from=hop.url)
    return visit


@pytest.mark.parametrize("seed", range(20))
def test_negative_suite_produces_no_pair(seed: int) -> None:
    rng = random.Random(seed)
    constant = "pub-" + "".join(rng.choices(string.hexdigits, k=16))
    visits = [negative_visits(p, i, constant, rng) for p in ("health", "dating", "vanilla") for i in range(3)]
    assert syncs(*visits).pairs == []


@pytest.mark.parametrize("seed", range(5))
def test_planted_among_negatives_precision_and_recall_are_one(seed: int) -> None:
    rng = random.Random(seed)
    constant = "".join(rng.choices(string.hexdigits, k=20))
    visits, planted = [], set()
    for persona in ("health", "dating", "vanilla"):
        ident = uid()
        for index in range(3):
            visit = negative_visits(persona, index, constant, rng)
            visit.cookie(".amazon-adsystem.com", "ad-id", ident, source="http")
            hop = visit.request("https://s.amazon-adsystem.com/ecm3?ex=openx", status=302)
            visit.request(f"https://u.openx.net/w/1.0/sd?id=537&val={ident}", redirected_from=hop.url)
            planted.add((persona, ident, "amazon-adsystem.com", "openx.net", "redirect"))
            visits.append(visit)
    detected = found(syncs(*visits))
    true_positives = detected & planted
    assert detected and len(true_positives) / len(detected) == 1.0  # precision
    assert true_positives == planted  # recall


def test_malformed_urls_are_read_not_fatal() -> None:
    visits = []
    for persona in ("health", "vanilla"):
        visit, ident = Visit(persona, 0), uid()
        visit.cookie(".criteo.com", "uid", ident)
        visit.request(f"http://[broken/x?u={ident}", referrer="http://[::1")
        visit.request(f"https://ib.adnxs.com/x?u={ident}", referrer="https://[oops/")
        visits.append(visit)
    assert {(p.persona, p.receiver) for p in syncs(*visits).pairs} == {
        ("health", "adnxs.com"),
        ("vanilla", "adnxs.com"),
    }


def test_one_persona_cannot_tell_constants_and_says_so() -> None:
    result = syncs(Visit("health", 0))
    assert result.warnings and "one persona" in result.warnings[0]


# ----- identifiers and partners -------------------------------------------------------------------


def test_why_not_names_each_exclusion() -> None:
    assert why_not("ab12cd", T0) == "short"
    assert why_not("0101010101", T0) == "low entropy"
    assert why_not("undefined_value", T0) == "word"
    assert why_not(str(T0 // 10**6), T0) == "timestamp"
    assert why_not(str(T0 // 10**9 + 86_400 * 30), T0) == "timestamp"  # an expiry a month ahead
    assert why_not("20231114221320", T0) == "timestamp"
    assert why_not(str(uuid.UUID(int=0x5A3F_91C2_0000_4000_8000_1234_5678_9ABC)), T0) is None
    assert why_not("4828737281922340123", T0) is None  # an AppNexus-style decimal id


def test_composite_values_are_split_and_decoded() -> None:
    assert {"3f9a2c71e0b84d5a", "k2Vb8Qx1pLm0"} <= tokens("uid%3D3f9a2c71e0b84d5a%7Cx%3Ak2Vb8Qx1pLm0.1")
    assert not any(t.startswith("2023") for t in tokens("t=2023-11-14T22:13:20Z&x=1"))


def test_site_domain_uses_the_public_suffix_list_and_falls_back() -> None:
    assert site_domain("https://s.amazon-adsystem.com/ecm3") == "amazon-adsystem.com"
    assert site_domain("a.b.bbc.co.uk") == "bbc.co.uk"
    assert site_domain("https://ads.one.test:8443/x") == "one.test"
    assert site_domain("http://127.0.0.1:9000/x") == "127.0.0.1"


def test_partners_of_a_domain_in_both_directions() -> None:
    visits = []
    for persona in ("health", "vanilla"):
        visit = Visit(persona, 0)
        mine, theirs = uid(), uid()
        visit.cookie(".amazon-adsystem.com", "ad-id", mine)
        visit.cookie(".criteo.com", "uid", theirs)
        visit.request(f"https://ib.adnxs.com/setuid?code={mine}")
        visit.request(f"https://aax.amazon-adsystem.com/s/iu3?cm3ppd=1&crto={theirs}")
        visit.request(f"https://pixel.rubiconproject.com/tap?crto={theirs}")  # not Amazon's business
        visits.append(visit)
    partners = {p.domain: p for p in partners_of(syncs(*visits).pairs, "www.amazon-adsystem.com")}
    assert set(partners) == {"adnxs.com", "criteo.com"}
    assert (partners["adnxs.com"].receives, partners["adnxs.com"].sends) == (2, 0)
    assert (partners["criteo.com"].receives, partners["criteo.com"].sends) == (0, 2)
    assert partners["criteo.com"].personas == ["health", "vanilla"]
