"""Endpoint classification against the shipped lists, EasyList/EasyPrivacy and user lists."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from harness.classify import Classifier, classify_ip, classify_name
from harness.classify.endpoints import SHIPPED_FILE
from harness.classify.organizations import ORGANIZATIONS_FILE
from harness.errors import InputError

DATA = Path(__file__).resolve().parents[1] / "harness" / "classify" / "data"


def test_unagi_is_amazon_tracking_flagged_by_easyprivacy():
    c = classify_name("unagi-na.amazon.com")
    assert (c.organization, c.party, c.category) == ("Amazon", "platform", "tracking")
    assert c.registrable_domain == "amazon.com"
    assert "easyprivacy" in c.lists and "smart-speaker" in c.lists
    assert c.ad_or_tracking


def test_amazon_adsystem_is_advertising_by_easylist():
    c = classify_name("s.amazon-adsystem.com")
    assert (c.organization, c.party, c.category) == ("Amazon", "platform", "advertising")
    assert "easylist" in c.lists
    assert c.ad_or_tracking


def test_device_metrics_comes_from_our_list_only():
    c = classify_name("device-metrics-us.amazon.com")
    assert "easylist" not in c.lists and "easyprivacy" not in c.lists
    assert "smart-speaker" in c.lists
    assert c.category == "tracking" and c.ad_or_tracking and c.party == "platform"


def test_voice_and_platform_endpoints():
    assert classify_name("avs-alexa-4-na.amazon.com").category == "voice"
    assert classify_name("api.eu.amazonalexa.com").category == "voice"
    kindle = classify_name("kindle-time.amazon.com")
    assert (kindle.category, kindle.party, kindle.ad_or_tracking) == ("platform", "platform", False)


def test_private_suffix_keeps_the_bucket_and_the_party_unknown():
    c = classify_name("x.s3.amazonaws.com")
    assert c.registrable_domain == "x.s3.amazonaws.com"
    assert c.organization == "Amazon"
    # a customer's bucket on Amazon's hosting: Amazon is not the party
    assert c.party == "unknown"
    cdn = classify_name("d3p8zr0ffa9t17.cloudfront.net")
    assert (cdn.registrable_domain, cdn.organization, cdn.category) == (
        "d3p8zr0ffa9t17.cloudfront.net",
        "Amazon",
        "content",
    )


def test_podcast_measurement_is_third_party_with_owner():
    c = classify_name("chrt.fm")
    assert (c.organization, c.owner, c.party, c.category) == ("Chartable", "Spotify", "third_party", "tracking")
    assert classify_name("dts.podtrac.com").ad_or_tracking
    adswizz = classify_name("cdn.adswizz.com")
    assert (adswizz.owner, adswizz.category) == ("SiriusXM", "advertising")


def test_names_are_normalised_and_unknowns_stay_unknown():
    assert classify_name("UNAGI-NA.Amazon.COM.") == classify_name("unagi-na.amazon.com")
    plain = classify_name("example.com")
    assert (plain.party, plain.category, plain.ad_or_tracking, plain.lists) == ("third_party", "other", False, ())
    assert classify_name("router.lan").party == "unknown"
    assert classify_name("router.lan").registrable_domain is None
    assert classify_name("not a name!").party == "unknown"


def test_skill_domains_make_a_skill_vendor():
    c = classify_name("api.weather-skill.example.com", skill_domains={"weather-skill.example.com"})
    assert c.party == "skill_vendor"
    hosted = classify_name(
        "abc.execute-api.us-east-1.amazonaws.com", skill_domains={"abc.execute-api.us-east-1.amazonaws.com"}
    )
    assert hosted.party == "skill_vendor"
    assert classify_name("api.weather-skill.example.com").party == "third_party"
    assert (
        classify_name("xweather-skill.example.com", skill_domains={"weather-skill.example.com"}).party == "third_party"
    )


def test_ip_addresses():
    c = classify_ip("192.168.86.40")
    assert (c.party, c.category, c.registrable_domain, c.ad_or_tracking) == ("unknown", "other", None, False)
    assert classify_name("2001:db8::1").name == "2001:db8::1"
    with pytest.raises(ValueError):
        classify_ip("not-an-ip")


def test_to_dict_is_json_ready():
    data = classify_name("unagi-na.amazon.com").to_dict()
    assert isinstance(data["lists"], list)
    assert set(data) >= {"name", "registrable_domain", "organization", "party", "category", "ad_or_tracking", "lists"}


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


USER_LIST = """\
name: my-lab
source: our own observations
date: 2026-01-01
licence: CC0
endpoints:
  - name: "metrics.example.org"
    category: tracking
  - domain: weather-vendor.example.com
    category: content
    party: skill_vendor
  - name: "device-metrics-*.amazon.com"
    category: platform
    note: we disagree
"""


def test_user_list_adds_and_overrides(tmp_path):
    path = _write(tmp_path / "mine.yaml", USER_LIST)
    classifier = Classifier([path])
    metrics = classifier.classify_name("metrics.example.org")
    assert (metrics.category, metrics.ad_or_tracking, metrics.lists) == ("tracking", True, ("my-lab",))
    assert classifier.classify_name("a.weather-vendor.example.com").party == "skill_vendor"
    overridden = classifier.classify_name("device-metrics-us.amazon.com")
    assert (overridden.category, overridden.note) == ("platform", "we disagree")
    assert "my-lab" in overridden.lists and "smart-speaker" not in overridden.lists
    # the shared classifier is unaffected
    assert classify_name("metrics.example.org").category == "other"
    assert classify_name("metrics.example.org", extra_lists=[path]).category == "tracking"


def test_user_list_from_environment(tmp_path, monkeypatch):
    path = _write(tmp_path / "env-list.yaml", "endpoints:\n  - domain: env.example\n    category: advertising\n")
    monkeypatch.setenv("HARNESS_ENDPOINTS", str(path))
    c = classify_name("media.env.example")
    assert (c.category, c.lists) == ("advertising", ("env-list",))


@pytest.mark.parametrize(
    ("text", "line", "column", "words"),
    [
        ("endpoints:\n  - name: a.example\n    category: spam\n", 3, 15, "category"),
        ("endpoints:\n  - name: a.example\n    category: voice\n    colour: red\n", 4, 5, "colour"),
        ("endpoints:\n  - name: a.example\n    domain: b.example\n    category: voice\n", 2, 5, "exactly one"),
        ("endpoints:\n  - domain: '*.example'\n    category: voice\n", 2, 13, "glob"),
        ("endpoints:\n  - name: 'bad name'\n    category: voice\n", 2, 11, "host name"),
        ("endpoints:\n  - name: a.example\n    category: [voice\n", 4, 1, "YAML"),
        ("endpoints:\n  - name: a.example\n    category: voice\n    category: other\n", 4, 5, "duplicate"),
        ("endpoints:\n  - name: a.example\n    paths: [events]\n    category: voice\n", 3, 12, "path"),
        ("endpoints:\n  - name: a.example\n", 2, 5, "category"),
        ("", 1, 1, "the list is empty"),
        ("# only a comment\n", 1, 1, "the list is empty"),
    ],
)
def test_bad_user_list_names_line_and_column(tmp_path, text, line, column, words):
    path = _write(tmp_path / "bad.yaml", text)
    with pytest.raises(InputError) as caught:
        Classifier([path])
    error = caught.value
    assert (error.place.line, error.place.column) == (line, column), str(error)
    assert words in error.message
    assert str(error).startswith(f"{path}:{line}:{column}: ")


def test_missing_user_list_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="not a regular file"):
        Classifier([tmp_path / "absent.yaml"])


@pytest.mark.parametrize("filename", [SHIPPED_FILE, ORGANIZATIONS_FILE])
def test_shipped_lists_carry_source_date_and_licence(filename):
    data = yaml.safe_load((DATA / filename).read_text(encoding="utf-8"))
    for field in ("name", "source", "date", "licence"):
        assert data.get(field), f"{filename} lacks {field}"
    readme = (DATA / "README.md").read_text(encoding="utf-8")
    assert filename in readme


def test_echo_capture_names(echo_captures):
    """The names the reference Echo capture resolves (its README) are attributed to Amazon."""
    readme = (echo_captures / "README.md").read_text(encoding="utf-8")
    for name in (
        "unagi-na.amazon.com",
        "spectrum.s3.amazonaws.com",
        "kindle-time.amazon.com",
        "d3p8zr0ffa9t17.cloudfront.net",
    ):
        assert name in readme
        assert classify_name(name).organization == "Amazon"
