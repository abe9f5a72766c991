"""Fetching over real HTTP on loopback: retries, timeouts, caps, redirects, the address guard."""

from __future__ import annotations

import random

import pytest

from manifests.schema import ErrorKind
from tests.images import jpeg_bytes
from tests.servers import image_site
from vlworkers import fetch as fetch_module
from vlworkers.fetch import FetchError, FetchLimits, fetch_bytes
from vlworkers.netguard import BlockedAddressError, check_public
from vlworkers.retry import Attempts, RetryPolicy, call_with_retries

PAYLOAD = jpeg_bytes()
FAST_RETRY = RetryPolicy(attempts=4, base_delay_s=0.01, max_delay_s=0.05)
LIMITS = FetchLimits(
    max_bytes=1_000_000, timeout_s=3, retry=FAST_RETRY, allow_private_addresses=True
)


@pytest.fixture(scope="module")
def site():
    with image_site(PAYLOAD) as base_url:
        yield base_url


def fetch(url: str, limits: FetchLimits = LIMITS) -> tuple[bytes | FetchError, int]:
    attempts = Attempts()
    try:
        return fetch_bytes(url, limits, attempts), attempts.count
    except FetchError as exc:
        return exc, attempts.count


@pytest.mark.parametrize("status", [503, 500, 429, 502])
def test_transient_http_errors_are_retried(site, status):
    data, attempts = fetch(f"{site}/flaky/{status}/2/a.jpg")
    assert data == PAYLOAD
    assert attempts == 3


def test_retries_give_up_after_the_configured_attempts(site):
    error, attempts = fetch(f"{site}/flaky/503/10/b.jpg")
    assert isinstance(error, FetchError)
    assert error.kind == ErrorKind.UNAVAILABLE and error.transient
    assert attempts == FAST_RETRY.attempts
    assert "gave up after 4 attempts" in error.message


@pytest.mark.parametrize(
    ("status", "kind"),
    [(404, ErrorKind.NOT_FOUND), (403, ErrorKind.PERMISSION_DENIED), (400, ErrorKind.FETCH_ERROR)],
)
def test_permanent_http_errors_are_not_retried(site, status, kind):
    error, attempts = fetch(f"{site}/status/{status}")
    assert isinstance(error, FetchError) and error.kind == kind
    assert attempts == 1


def test_redirects_are_followed(site):
    assert fetch(f"{site}/redirect/redirect/ok.jpg") == (PAYLOAD, 1)


def test_every_redirect_hop_passes_the_address_guard(site, monkeypatch):
    checked: list[str] = []

    def guard(url: str) -> None:
        checked.append(url)
        if url.split("/", 3)[-1].startswith("internal"):
            raise BlockedAddressError("internal resolves to 10.0.0.7")

    monkeypatch.setattr(fetch_module, "check_public", guard)
    limits = FetchLimits(retry=FAST_RETRY, allow_private_addresses=False)
    error, attempts = fetch(f"{site}/redirect/internal/admin.jpg", limits)
    assert isinstance(error, FetchError) and error.kind == ErrorKind.BLOCKED_ADDRESS
    assert attempts == 1
    assert [u.split("/", 3)[-1] for u in checked] == [
        "redirect/internal/admin.jpg",
        "internal/admin.jpg",
    ]


def test_loopback_is_refused_by_default(site):
    error, _ = fetch(f"{site}/ok.jpg", FetchLimits(retry=FAST_RETRY))
    assert isinstance(error, FetchError) and error.kind == ErrorKind.BLOCKED_ADDRESS
    assert "--allow-private-addresses" in error.message


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/x",
        "http://localhost/x",
        "http://10.1.2.3/x",
        "http://192.168.0.1/x",
        "http://172.16.5.5/x",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]/x",
        "http://[fd00:ec2::254]/x",
        "http://[::ffff:127.0.0.1]/x",
        "http://0.0.0.0/x",
    ],
)
def test_non_public_addresses_are_blocked(url):
    with pytest.raises(BlockedAddressError):
        check_public(url)


def test_public_address_passes():
    check_public("http://93.184.216.34/x")  # a literal: no DNS needed


def test_a_stalled_server_cannot_hang_the_fetch(site):
    limits = FetchLimits(timeout_s=1.5, retry=RetryPolicy(attempts=1), allow_private_addresses=True)
    error, _ = fetch(f"{site}/slow", limits)
    assert isinstance(error, FetchError) and error.kind == ErrorKind.TIMEOUT


def test_oversized_stream_is_cut_off_while_it_arrives(site):
    error, attempts = fetch(f"{site}/endless")
    assert isinstance(error, FetchError) and error.kind == ErrorKind.TOO_LARGE
    assert attempts == 1


def test_unreachable_port_is_transient():
    error, attempts = fetch("http://127.0.0.1:9/x.jpg")
    assert isinstance(error, FetchError) and error.kind == ErrorKind.UNAVAILABLE
    assert attempts == FAST_RETRY.attempts


@pytest.mark.parametrize("uri", ["", "   "])
def test_empty_uri(uri):
    error, attempts = fetch(uri)
    assert isinstance(error, FetchError) and error.kind == ErrorKind.INVALID_URI
    assert attempts == 0


def test_local_files_and_missing_ones(tmp_path):
    (tmp_path / "a b ü.jpg").write_bytes(PAYLOAD)
    assert fetch(str(tmp_path / "a b ü.jpg")) == (PAYLOAD, 1)
    error, attempts = fetch(str(tmp_path / "nope.jpg"))
    assert isinstance(error, FetchError) and error.kind == ErrorKind.NOT_FOUND and attempts == 1


def test_backoff_is_capped_exponential_with_jitter():
    policy = RetryPolicy(attempts=6, base_delay_s=1.0, max_delay_s=5.0)
    rng = random.Random(1)
    delays = [policy.delay(n, rng) for n in range(6) for _ in range(200)]
    assert max(delays) <= 5.0
    assert min(delays) >= 0.0
    first = [policy.delay(0, rng) for _ in range(200)]
    assert max(first) <= 1.0 and len(set(first)) > 100  # jittered, not fixed


def test_call_with_retries_sleeps_between_tries_only():
    sleeps: list[float] = []
    calls = iter([OSError("reset"), OSError("reset"), "ok"])

    def flaky() -> str:
        outcome = next(calls)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    attempts = Attempts()
    result = call_with_retries(flaky, FAST_RETRY, lambda e: True, attempts, sleep=sleeps.append)
    assert (result, attempts.count, len(sleeps)) == ("ok", 3, 2)
