"""The egress guard: sys.http_request reaches public addresses only, unless allowed (SSRF)."""

from __future__ import annotations

import ipaddress
import ssl
from urllib.parse import quote

import httpx
import pytest

from flowledger import Engine
from flowledger.config import ConfigError, Settings
from flowledger.egress import EgressPolicy
from flowledger.steps.transport import EgressRefused, GuardedTransport
from tests.steps.http_server import serve

REFUSED = [
    "169.254.169.254",  # cloud metadata
    "::ffff:169.254.169.254",
    "::ffff:a9fe:a9fe",
    "127.0.0.1",
    "127.1.2.3",
    "::1",
    "0.0.0.0",
    "10.1.2.3",
    "172.16.0.1",
    "192.168.1.1",
    "100.64.0.1",  # carrier-grade NAT
    "fe80::1",
    "fd00::1",
    "224.0.0.1",
    # IPv6 forms that embed an IPv4 address: judged by the address inside.
    "64:ff9b::7f00:1",  # NAT64 well-known prefix → 127.0.0.1
    "64:ff9b::a9fe:a9fe",  # → 169.254.169.254
    "64:ff9b:1::a9fe:a9fe",  # local-use NAT64: the site's own network
    "2002:7f00:1::1",  # 6to4 of 127.0.0.1
    "2002:a9fe:a9fe::",  # 6to4 of 169.254.169.254
    "::127.0.0.1",  # IPv4-compatible
    "::169.254.169.254",
    "::ffff:0:127.0.0.1",  # SIIT
    "::ffff:0:a9fe:a9fe",
    "fec0::1",  # site-local
]


@pytest.mark.parametrize("address", REFUSED)
def test_private_and_special_addresses_are_refused_by_default(address: str) -> None:
    problem = EgressPolicy().problem("example.com", ipaddress.ip_address(address))
    assert problem is not None and problem.startswith(str(ipaddress.ip_address(address)))


@pytest.mark.parametrize("address", ["0.0.0.0", "::"])
def test_the_unspecified_address_is_named_as_such(address: str) -> None:
    problem = EgressPolicy().problem("example.com", ipaddress.ip_address(address))
    assert problem is not None and "the unspecified address" in problem


@pytest.mark.parametrize(
    "address",
    ["93.184.215.14", "8.8.8.8", "2001:4860:4860::8888", "64:ff9b::808:808", "2002:808:808::1"],
)
def test_public_addresses_pass(address: str) -> None:
    assert EgressPolicy().problem("example.com", ipaddress.ip_address(address)) is None


def test_the_allow_list_takes_hosts_addresses_and_networks() -> None:
    policy = EgressPolicy.parse("api.internal, 10.0.0.0/8, ::1, 127.0.0.1")
    assert policy.problem("api.internal", ipaddress.ip_address("192.168.9.9")) is None
    assert policy.problem("x", ipaddress.ip_address("10.20.30.40")) is None
    assert policy.problem("x", ipaddress.ip_address("::1")) is None
    assert policy.problem("x", ipaddress.ip_address("::ffff:127.0.0.1")) is None
    assert policy.problem("x", ipaddress.ip_address("192.168.9.9")) is not None
    assert EgressPolicy.parse("*").problem("x", ipaddress.ip_address("127.0.0.1")) is None


def test_a_bad_allow_entry_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="'no such/thing' is neither a host name"):
        Settings.from_env({"FLOWLEDGER_HTTP_ALLOW": "10.0.0.0/8, no such/thing"})


@pytest.mark.parametrize(
    "host",
    ["127.0.0.1", "0x7f000001", "2130706433", "[::1]", "localhost", "localhost.", "[::127.0.0.1]"],
)
async def test_the_transport_refuses_before_connecting(host: str) -> None:
    async with httpx.AsyncClient(transport=GuardedTransport(EgressPolicy())) as client:
        with pytest.raises(EgressRefused, match="refused to connect"):
            await client.get(f"http://{host}:9/")


async def test_a_workflow_cannot_reach_localhost_by_default(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("FLOWLEDGER_HTTP_ALLOW")
    with serve() as base:
        text = (
            "name: ssrf\nsteps:\n  - id: call\n    type: sys.http_request\n"
            f"    input: {{url: '{base}/json'}}\n    retry: {{max_attempts: 3}}\n"
        )
        async with Engine(db_url) as engine:
            doc = await engine.run(engine.load_text(text))
    assert doc["runtimeStatus"] == "Failed"
    message = doc["error"]["message"]
    assert "refused to connect to 127.0.0.1: 127.0.0.1 is a loopback address" in message
    assert "FLOWLEDGER_HTTP_ALLOW" in message
    assert doc["error"]["attempt"] == 1  # refused for good: no retries


async def test_allowed_hosts_work_and_keep_their_host_header(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLOWLEDGER_HTTP_ALLOW", "localhost")
    with serve() as base:
        url = base.replace("127.0.0.1", "localhost")
        text = (
            "name: allowed\nsteps:\n  - id: call\n    type: sys.http_request\n"
            f"    input: {{url: '{url}/echo'}}\n"
        )
        async with Engine(db_url) as engine:
            doc = await engine.run(engine.load_text(text))
    assert doc["runtimeStatus"] == "Completed", doc["error"]
    [step] = doc["steps"].values()
    assert step["outputData"]["body"]["headers"]["host"] == url.removeprefix("http://")


async def test_a_redirect_to_a_refused_address_is_refused(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLOWLEDGER_HTTP_ALLOW", "127.0.0.1")
    with serve() as base:
        target = quote("http://169.254.169.254/latest/meta-data/", safe="")
        text = (
            "name: hop\nsteps:\n  - id: call\n    type: sys.http_request\n"
            f"    input: {{url: '{base}/redirect-to?url={target}'}}\n"
        )
        async with Engine(db_url) as engine:
            doc = await engine.run(engine.load_text(text))
    assert doc["runtimeStatus"] == "Failed"
    assert "169.254.169.254 is a link-local address" in doc["error"]["message"]


def test_a_trailing_dot_is_judged_like_the_plain_name() -> None:
    policy = EgressPolicy.parse("api.internal")
    assert policy.problem("api.internal.", ipaddress.ip_address("10.1.1.1")) is None
    assert EgressPolicy().problem("localhost.", ipaddress.ip_address("127.0.0.1")) is not None


async def test_credentials_are_dropped_on_a_cross_origin_redirect(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLOWLEDGER_HTTP_ALLOW", "127.0.0.1, localhost")
    monkeypatch.setenv("FLOWLEDGER_SECRET_TOKEN", "secret-token-value")
    with serve() as base:
        other = base.replace("127.0.0.1", "localhost")  # same server, another origin
        for target, kept in ((f"{other}/echo", False), (f"{base}/echo", True)):
            hop = quote(target, safe="")
            text = (
                "name: hop\nsteps:\n  - id: call\n    type: sys.http_request\n"
                f"    input:\n      url: '{base}/redirect-to?url={hop}'\n"
                "      headers: {Authorization: 'Bearer x', Cookie: 'a=b', X-Api-Key: k,\n"
                "                X-Custom: '{{ secrets.TOKEN }}', Accept: text/plain}\n"
            )
            async with Engine(db_url) as engine:
                doc = await engine.run(engine.load_text(text))
            assert doc["runtimeStatus"] == "Completed", doc["error"]
            [step] = doc["steps"].values()
            seen = step["outputData"]["body"]["headers"]
            assert seen["accept"] == "text/plain"
            for name in ("authorization", "x-api-key", "x-custom"):
                assert (name in seen) is kept, (target, name)


async def test_a_body_made_from_secrets_is_not_sent_again_to_another_origin(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A 307/308 re-sends the body: the secret headers were dropped on the hop to
    another origin, the JSON body with a client secret went along."""
    monkeypatch.setenv("FLOWLEDGER_HTTP_ALLOW", "127.0.0.1, localhost")
    monkeypatch.setenv("FLOWLEDGER_SECRET_TOKEN", "secret-token-value")
    with serve() as base:
        other = base.replace("127.0.0.1", "localhost")
        cases = (
            (f"{other}/echo", "{{ secrets.TOKEN }}", "Failed"),  # not followed
            (f"{base}/echo", "{{ secrets.TOKEN }}", "Completed"),  # same origin: sent
            (f"{other}/echo", "plain", "Completed"),  # nothing secret in it
        )
        for target, value, status in cases:
            hop = quote(target, safe="")
            text = (
                "name: hop\nsteps:\n  - id: call\n    type: sys.http_request\n"
                f"    input:\n      method: POST\n      url: '{base}/redirect-to?code=307&url={hop}'\n"
                f"      json: {{client_secret: '{value}'}}\n"
            )
            async with Engine(db_url) as engine:
                doc = await engine.run(engine.load_text(text))
            assert doc["runtimeStatus"] == status, (target, value, doc["error"])
            if status == "Failed":
                message = doc["error"]["message"]
                assert "redirected (307) to another origin" in message
                assert "a body made from secrets; not followed" in message
            else:
                [step] = doc["steps"].values()
                assert step["outputData"]["body"]["method"] == "POST"


async def test_headers_made_whole_by_a_template_with_secrets_stay_home(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``headers: "{{ {'X-Partner': secrets.TOKEN} }}"``: which header holds the secret
    is known only at run time; a hop to another origin kept it."""
    monkeypatch.setenv("FLOWLEDGER_HTTP_ALLOW", "127.0.0.1, localhost")
    monkeypatch.setenv("FLOWLEDGER_SECRET_TOKEN", "secret-token-value")
    with serve() as base:
        other = base.replace("127.0.0.1", "localhost")
        for target, kept in ((f"{other}/echo", False), (f"{base}/echo", True)):
            hop = quote(target, safe="")
            text = (
                "name: hop\nsteps:\n  - id: call\n    type: sys.http_request\n"
                f"    input:\n      url: '{base}/redirect-to?url={hop}'\n"
                "      headers: \"{{ {'X-Partner': secrets.TOKEN, 'Accept': 'text/plain'} }}\"\n"
            )
            async with Engine(db_url) as engine:
                doc = await engine.run(engine.load_text(text))
            assert doc["runtimeStatus"] == "Completed", doc["error"]
            [step] = doc["steps"].values()
            seen = step["outputData"]["body"]["headers"]
            assert ("x-partner" in seen) is kept and seen["accept"] == "text/plain"


def test_every_engine_transport_shares_one_verifying_tls_context() -> None:
    # Building a context parses the CA bundle (~50 ms): once per process, not per engine.
    first, second = GuardedTransport(EgressPolicy()), GuardedTransport(EgressPolicy())
    contexts = [t.inner._pool._ssl_context for t in (first, second)]  # type: ignore[attr-defined]
    assert contexts[0] is contexts[1]
    assert contexts[0].verify_mode == ssl.CERT_REQUIRED and contexts[0].check_hostname
