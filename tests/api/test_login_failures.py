"""Failed authentication is rate-limited per client address (429 with Retry-After) and audited once per
address and window: the table's rules in-process, then a real server seen from its own loopback addresses."""

from __future__ import annotations

import random

import httpx
import pytest

from mlyard.services.login_failures import LoginFailures
from tests.conftest import TLS, Server


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_an_address_waits_after_its_limit_until_its_window_ends() -> None:
    clock = Clock()
    failures = LoginFailures(3, window=60, clock=clock)
    seen = [failures.record("10.0.0.1") for _ in range(3)]
    assert [(s.failures, s.first, s.reached_limit) for s in seen] == [(1, True, False), (2, False, False),
                                                                        (3, False, True)]  # fmt: skip
    clock.now += 20
    assert failures.retry_after("10.0.0.1") == 40
    assert failures.retry_after("10.0.0.2") == 0  # per address
    clock.now += 40
    assert failures.retry_after("10.0.0.1") == 0  # a new window
    assert failures.record("10.0.0.1").first


def test_the_table_is_bounded() -> None:
    clock = Clock()
    failures = LoginFailures(3, window=60, max_addresses=100, clock=clock)
    for n in range(1000):
        failures.record(f"10.0.{n // 256}.{n % 256}")
        clock.now += 0.01
    assert len(failures) == 100
    assert failures.retry_after("10.0.3.231") == 0 and failures.record("10.0.3.231").failures == 2  # the newest kept


def test_no_limit_when_disabled() -> None:
    failures = LoginFailures(0)
    for _ in range(50):
        failures.record("10.0.0.1")
    assert failures.retry_after("10.0.0.1") == 0


def from_address(server: Server, address: str, token: str) -> httpx.Client:
    """A client whose connections come from `address` (any 127.x.y.z reaches a loopback server)."""
    transport = httpx.HTTPTransport(local_address=address, verify=TLS)
    return httpx.Client(base_url=server.url, transport=transport, headers={"Authorization": f"Bearer {token}"})


@pytest.mark.slow
def test_failed_logins_from_one_address_get_429_and_one_audit_entry(server: Server) -> None:
    address = f"127.{random.randint(1, 254)}.{random.randint(0, 254)}.{random.randint(1, 254)}"
    with from_address(server, address, "myd_guess") as guesser:
        answers = [guesser.get("/api/v1/me") for _ in range(21)]
    assert [a.status_code for a in answers] == [401] * 20 + [429]
    throttled = answers[-1]
    assert 1 <= int(throttled.headers["retry-after"]) <= 60
    assert throttled.json()["error"] == (
        f"too many failed authentications from {address}: try again in {throttled.headers['retry-after']} s"
    )
    with from_address(server, address, server.token) as same_address:  # even a good token waits
        assert same_address.get("/api/v1/me").status_code == 429
    with server.client() as api:  # other addresses are not affected
        assert api.get("/api/v1/me").status_code == 200
        entries = [e for e in api.get("/api/v1/audit", params={"limit": 1000}).json() if e["remote_addr"] == address]
    assert len(entries) == 1
    assert entries[0]["action"] == "login.failed"
    assert entries[0]["detail"] == {"reason": "invalid token", "token_prefix": "myd_gues", "failures": 20,
                                    "throttled": True}  # fmt: skip
