"""Sender patterns (protocol/policies.py), pure: what each form matches, the canonical form a pattern is kept in,
the patterns refused because no agent address could match them, and the most specific entry a Matcher names."""

from __future__ import annotations

import pytest

from axme_cli.protocol.policies import Matcher, PatternError, matches, parse_pattern

A = "agent://acme/prod/billing"

MATCHES = [
    # pattern, address, matches
    ("*", A, True),
    ("*", "agent://x", True),  # anything at all
    ("agent://*", A, True),
    ("agent://acme/*", A, True),
    ("agent://acme/*", "agent://acme/staging/billing", True),
    ("agent://acme/*", "agent://acmecorp/prod/billing", False),  # parts are compared whole, never as prefixes
    ("agent://acme/prod/*", A, True),
    ("agent://acme/prod/*", "agent://acme/production/billing", False),
    ("agent://acme/prod/*", "agent://acme/prod", False),
    ("agent://acme/prod/billing", A, True),
    ("agent://acme/prod/billing", "agent://acme/prod/billing2", False),
    ("agent://acme/prod/billing", "agent://acme/prod/bill", False),
    ("agent://acme/prod/billing", "AGENT://acme/prod/billing", False),
    ("agent://acme/prod/*", "agent://acme/prod/billing/extra", False),  # not an address: four parts
    ("agent://acme/*", "agent://acme//billing", False),
    ("agent://acme/prod/*", "initiator://acme/prod/admin", False),  # only agents
    ("agent://acme/*", "actor://acme/prod/ops@example.com", False),
]


@pytest.mark.parametrize("pattern, address, expected", MATCHES)
def test_what_a_pattern_matches(pattern: str, address: str, expected: bool) -> None:
    assert matches(pattern, address) is expected


@pytest.mark.parametrize("text, canonical", [
    ("*", "*"),
    ("  *  ", "*"),
    ("billing", "agent://acme/prod/billing"),  # a bare name: an agent of the caller's workspace
    ("acme/prod/billing", "agent://acme/prod/billing"),
    ("other/*", "agent://other/*"),
    ("agent://*", "agent://*"),
    ("agent://acme/*", "agent://acme/*"),
    ("agent://acme/prod/*", "agent://acme/prod/*"),
    ("agent://acme/prod/billing.v2_x-y", "agent://acme/prod/billing.v2_x-y"),
])
def test_the_canonical_form(text: str, canonical: str) -> None:
    assert parse_pattern(text, "acme", "prod") == canonical


@pytest.mark.parametrize("text, reason", [
    ("", "a pattern names senders"),
    ("agent://ACME/*", "organization slug"),
    ("agent://ac/*", "organization slug"),  # slugs are 3+ characters
    ("agent://acme/PROD/*", "workspace slug"),
    ("agent://acme/prod/Billing", "no agent name"),
    ("agent://acme/prod/billing.", "no agent name"),
    ("agent://acme/prod/bill*", "whole last part"),
    ("agent://acme/*/billing", "whole last part"),
    ("agent://*/prod/billing", "whole last part"),
    ("**", "whole last part"),
    ("agent://acme/prod", "three parts"),
    ("agent://acme", "three parts"),
    ("agent://acme/prod/billing/x", "three parts after agent://"),
    ("agent://acme//billing", "no empty part"),
    ("agent://acme/prod/", "no empty part"),
    ("agent://", "no empty part"),
    ("https://acme/prod/billing", "only agent addresses"),
    ("initiator://acme/prod/admin", "only agent addresses"),
    ("x" * 300, "at most 255"),
    ("agent://acme/prod/" + "b" * 64, "no agent name"),
])
def test_a_pattern_no_address_can_match_is_refused_saying_why(text: str, reason: str) -> None:
    with pytest.raises(PatternError) as refused:
        parse_pattern(text, "acme", "prod")
    assert reason in str(refused.value)


def test_a_matcher_names_the_most_specific_entry() -> None:
    entries = [("*", "any"), ("agent://acme/*", "org"), ("agent://acme/prod/*", "ws"), (A, "exact"),
               ("agent://acme/prod/*", "ws again")]
    m = Matcher(entries)
    assert m.size == 5
    assert m.match(A) == "exact"
    assert m.match("agent://acme/prod/other") == "ws"  # the first of two equal patterns
    assert m.match("agent://acme/dev/other") == "org"
    assert m.match("agent://else/prod/billing") == "any"
    assert m.match("initiator://acme/prod/admin") == "any"
    assert Matcher([(A, 1)]).match("agent://acme/prod/other") is None
    assert Matcher([]).match(A) is None


def test_many_entries_are_looked_up_not_scanned() -> None:
    """Ten thousand exact entries: each address still costs a few dictionary lookups (the test asserts answers,
    not time: the Matcher keeps no list to scan)."""
    m = Matcher([(f"agent://acme/prod/a{n}", n) for n in range(10_000)])
    assert m.match("agent://acme/prod/a9999") == 9999
    assert m.match("agent://acme/prod/b1") is None
    assert not hasattr(m, "__dict__") and all(isinstance(d, dict) for d in m._by)
