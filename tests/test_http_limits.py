"""Hole 9 of issue 13: a hostile or broken HTTP service cannot stall a job past its
timeout, fill the memory, or have a tenant segment dropped from a URL.

Against the real loopback provisioning server (tests/provisioning_server.py): one
answer drips its body a byte at a time, each byte well inside the read timeout;
another streams 64 MiB; another declares a body past the cap.
"""

from __future__ import annotations

import asyncio

import pytest

from core.errors import ServiceError
from core.services.blackberry import segment
from core.services.http_client import ServiceClient
from provisioning_server import ProvisioningServer
from test_http_adapters import TOKEN_ENV, server  # noqa: F401  (the fixture: the server, reset, its token set)


def client(server: ProvisioningServer, **options) -> ServiceClient:
    return ServiceClient("blackberry", {"url": server.url, "token_env": TOKEN_ENV, "retries": 0, **options}, display_name="BlackBerry")


async def refused(server: ProvisioningServer, http: ServiceClient, path: str = "/contoso/api/v1/users") -> ServiceError:
    """The error a GET of ``path`` raised, once the server's streamed answer ended."""
    try:
        with pytest.raises(ServiceError) as caught:
            await http.request("GET", path)
    finally:
        await http.aclose()
    assert await asyncio.to_thread(server.streamed.over.wait, 120)
    return caught.value


async def test_a_dripping_answer_is_cut_at_the_timeout(server):
    server.drip_pause = 0.1  # every byte arrives well inside the 1 s read timeout …
    server.fail_next("GET", "/contoso/api/v1/users", "drip")
    error = await refused(server, client(server, timeout=1))
    # … but the whole answer would take over 4 s: the call gave up, the server saw it go.
    assert str(error) == "BlackBerry did not answer within 1 s (GET /contoso/api/v1/users)."
    assert server.streamed.hung_up and not server.streamed.finished
    assert server.streamed.written < server.streamed.total


async def test_a_dripping_answer_is_retried_within_its_tries_then_refused(server):
    server.fail_next("GET", "/contoso/api/v1/users", "drip", times=2)
    error = await refused(server, client(server, timeout=0.5, retries=1, backoff=0))
    assert str(error) == "BlackBerry did not answer within 0.5 s (GET /contoso/api/v1/users, 2 tries)."
    assert len(server.calls_to("GET", "/contoso/api/v1/users")) == 2


@pytest.mark.parametrize("kind", ["huge", "huge-declared"])
async def test_a_huge_answer_is_refused_past_the_cap(server, kind):
    server.huge_bytes = 64 * 1024 * 1024
    server.fail_next("GET", "/contoso/api/v1/users", kind)
    error = await refused(server, client(server, timeout=60, max_response_bytes=1024 * 1024))
    assert str(error) == "BlackBerry answered GET /contoso/api/v1/users with more than 1048576 bytes, which is refused."
    # The client stopped reading near the cap: the server could not write the rest.
    assert server.streamed.hung_up and not server.streamed.finished
    assert server.streamed.written < 16 * 1024 * 1024


async def test_an_answer_under_the_cap_is_read_whole(server):
    server.huge_bytes = 512 * 1024
    server.fail_next("GET", "/contoso/api/v1/users", "huge")
    http = client(server, timeout=60, max_response_bytes=1024 * 1024)
    try:
        response = await http.request("GET", "/contoso/api/v1/users")
    finally:
        await http.aclose()
    assert response.body["users"] == [] and len(response.body["pad"]) > 500 * 1024
    assert server.streamed.finished


def test_the_cap_is_a_positive_integer(server):
    with pytest.raises(Exception, match=r"services\.blackberry\.max_response_bytes must be an integer of at least 1"):
        client(server, max_response_bytes=0)


@pytest.mark.parametrize("path", [f"/{segment('..')}/api/v1/users", f"/{segment('.')}/api/v1/users", f"/{segment('')}/api/v1/users",
                                  "/../api/v1/users", "/./api/v1/users", "//api", "/contoso//users",
                                  "/%2e%2e/api/v1/users", "/%2E/api", "/contoso/api/v1/users/"])
async def test_empty_dot_and_dotdot_segments_are_refused_before_sending(server, path):
    http = client(server)
    try:
        with pytest.raises((ServiceError, ValueError)) as caught:
            await http.request("DELETE", path)
    finally:
        await http.aclose()
    if isinstance(caught.value, ServiceError):
        assert "a path segment is empty, '.' or '..'" in str(caught.value)
    assert server.calls == []
