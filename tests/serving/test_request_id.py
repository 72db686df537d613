"""The request id of `/invocations`: a well-formed client id is kept, anything else replaced by a new one."""

from __future__ import annotations

import pytest

from mlyard.serving.app import MAX_REQUEST_ID, _request_id


def scope(*headers: tuple[bytes, bytes]) -> dict:
    return {"headers": [(b"content-type", b"application/json"), *headers]}


@pytest.mark.parametrize("given", [b"abc-123", b"order:42.7_x", b"a" * MAX_REQUEST_ID])
def test_a_client_id_is_kept(given: bytes) -> None:
    assert _request_id(scope((b"x-request-id", given))) == given


@pytest.mark.parametrize("given", [b"", b"has space", b"a" * (MAX_REQUEST_ID + 1), b"new\nline", "é".encode()])
def test_a_malformed_id_is_replaced(given: bytes) -> None:
    new = _request_id(scope((b"x-request-id", given)))
    assert new != given and len(new) == 32 and int(new, 16) >= 0


def test_ids_are_fresh_without_a_client_id() -> None:
    assert len({_request_id(scope()) for _ in range(100)}) == 100
