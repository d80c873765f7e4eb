"""SSRF: webhooks and http agents must not make the runtime call internal addresses (loopback, link-local, private,
...) unless the operator opened them. The policy and the connection checks are tested directly (no traffic leaves
loopback: a refused address is never dialled); a real `axme server` and `axme dev` are driven over HTTP with a
receiver on 127.0.0.1 that records every call."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Iterator
from ipaddress import ip_address, ip_network
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiohttp.abc import AbstractResolver, ResolveResult

from axme_cli.runtime.egress import Egress, _Resolver
from axme_cli.runtime.egress_policy import EgressRefused, Policy, check_callback_url, kind_of
from axme_cli.runtime.errors import Unprocessable
from tests.conftest import make_agent, new_intent, unique
from tests.receiver import Receiver, poll
from tests.runtime_proc import RuntimeProcess
from tests.runtime_thread import RuntimeThread

SERVER = Policy()  # `axme server`, or `axme dev` bound elsewhere than loopback
DEV = Policy(loopback=True)  # `axme dev` on loopback
EVENT = {"event_type": "inbox.thread_created", "source": "probe", "payload": {"n": 1}}
FAST = ["--webhook-retry-base-seconds", "600", "--outbound-timeout-seconds", "5"]


@pytest.mark.parametrize(("address", "kind"), [
    ("127.0.0.1", "loopback"), ("127.255.0.9", "loopback"), ("::1", "loopback"),
    ("169.254.169.254", "link-local"), ("fe80::1", "link-local"), ("fe80::1%eth0", "link-local"),
    ("10.1.2.3", "private"), ("172.16.0.1", "private"), ("172.31.255.255", "private"), ("192.168.1.1", "private"),
    ("fc00::1", "private"), ("fd12:3456::1", "private"), ("fec0::1", "private"),
    ("100.64.0.1", "shared (CGNAT)"), ("100.127.255.254", "shared (CGNAT)"),
    ("224.0.0.1", "multicast"), ("239.1.1.1", "multicast"), ("ff02::1", "multicast"),
    ("0.0.0.0", "unspecified"), ("::", "unspecified"), ("0.1.2.3", "reserved"), ("240.0.0.1", "reserved"),
    ("255.255.255.255", "reserved"), ("192.0.2.1", "reserved"), ("198.18.0.1", "reserved"),
    # IPv6 forms that carry an IPv4 address are judged by it
    ("::ffff:127.0.0.1", "loopback"), ("::ffff:169.254.169.254", "link-local"), ("::ffff:10.0.0.1", "private"),
    ("64:ff9b::a9fe:a9fe", "link-local"), ("2002:a9fe:a9fe::", "link-local"), ("2002:7f00:1::", "loopback"),
    ("2001:0:4136:e378:8000:63bf:80ff:fffe", "loopback"),  # Teredo whose client is 127.0.0.1
    # the internet
    ("8.8.8.8", None), ("1.1.1.1", None), ("2001:4860:4860::8888", None), ("::ffff:8.8.8.8", None),
    ("64:ff9b::808:808", None), ("100.128.0.1", None), ("172.32.0.1", None),
])
def test_what_counts_as_an_internal_address(address: str, kind: str | None) -> None:
    assert kind_of(ip_address(address)) == kind


def test_server_refuses_every_internal_kind_dev_on_loopback_only_opens_loopback() -> None:
    for address in ("127.0.0.1", "::1", "::ffff:127.0.0.1", "169.254.169.254", "fe80::1", "10.0.0.1", "100.64.0.1"):
        assert SERVER.refusal(ip_address(address)) is not None, address
    assert DEV.refusal(ip_address("127.0.0.1")) is None
    assert DEV.refusal(ip_address("::1")) is None
    assert DEV.refusal(ip_address("::ffff:127.0.0.1")) is None
    # cloud metadata, even on a developer's laptop, only when named
    assert DEV.refusal(ip_address("169.254.169.254")) == "link-local"
    assert DEV.refusal(ip_address("fe80::1")) == "link-local"
    assert DEV.refusal(ip_address("10.0.0.1")) == "private"
    metadata = Policy(networks=(ip_network("169.254.169.254/32"),), loopback=True)
    assert metadata.refusal(ip_address("169.254.169.254")) is None
    assert metadata.refusal(ip_address("169.254.169.253")) == "link-local"
    team = Policy(networks=(ip_network("10.0.0.0/8"), ip_network("fd00::/8")))
    assert team.refusal(ip_address("10.20.30.40")) is None
    assert team.refusal(ip_address("::ffff:10.20.30.40")) is None  # the mapped form of an opened address
    assert team.refusal(ip_address("fd00::5")) is None
    assert team.refusal(ip_address("192.168.0.1")) == "private"
    assert team.refusal(ip_address("127.0.0.1")) == "loopback"
    assert team.refusal(ip_address("8.8.8.8")) is None


@pytest.mark.parametrize("url", [
    "http://127.0.0.1:8080/hook", "http://[::1]/hook", "https://169.254.169.254/latest/meta-data/",
    "http://[fe80::1%25eth0]/", "http://10.0.0.8/", "http://[::ffff:127.0.0.1]/", "http://0.0.0.0:80/",
    "http://127.1/", "http://2130706433/", "http://0x7f.0.0.1/", "http://0177.0.0.1/",  # what getaddrinfo reads
    "http://localhost:9000/", "http://LOCALHOST./", "http://api.localhost/",
])
def test_a_literal_internal_address_or_localhost_is_refused_at_create_time(url: str) -> None:
    with pytest.raises(Unprocessable) as refused:
        check_callback_url(SERVER, url)
    assert refused.value.details == {"field": "callback_url"}
    assert refused.value.message.startswith("callback_url: refused: ")
    assert refused.value.message.endswith("--allow-private-callbacks opens it")


def test_create_time_check_lets_names_and_opened_addresses_through() -> None:
    for url in ("https://hooks.example.com/axme", "http://8.8.8.8/", "http://[2001:4860:4860::8888]/",
                "http://deadbeef/"):  # a name: checked when dialled
        check_callback_url(SERVER, url)
    for url in ("http://127.0.0.1:8080/", "http://localhost:8080/", "http://[::1]/"):
        check_callback_url(DEV, url)
    with pytest.raises(Unprocessable, match="169.254.169.254 is a link-local address"):
        check_callback_url(DEV, "http://169.254.169.254/")
    check_callback_url(Policy(networks=(ip_network("127.0.0.0/8"), ip_network("::1/128"))), "http://localhost/")


class Answers(AbstractResolver):
    """A resolver that answers what the test says (names from nowhere: nothing is looked up)."""

    def __init__(self, table: dict[str, list[str]]) -> None:
        self.table = table
        self.asked: list[str] = []

    async def resolve(self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET,
                      ) -> list[ResolveResult]:
        self.asked.append(host)
        return [ResolveResult(hostname=host, host=a, port=port, family=socket.AF_INET6 if ":" in a else socket.AF_INET,
                              proto=0, flags=0) for a in self.table[host]]

    async def close(self) -> None:
        pass


def test_the_resolver_drops_internal_answers_and_refuses_a_name_with_only_those() -> None:
    table = {"mixed.test": ["169.254.169.254", "93.184.216.34", "::1"], "meta.test": ["169.254.169.254"],
             "local.test": ["127.0.0.1", "::1"]}

    async def main() -> None:
        resolver = _Resolver(DEV, Answers(table))
        kept = await resolver.resolve("mixed.test", 80)
        assert [a["host"] for a in kept] == ["93.184.216.34", "::1"]  # nothing is dialled here
        with pytest.raises(EgressRefused) as refused:
            await resolver.resolve("meta.test", 80)
        assert str(refused.value) == ("refused: meta.test resolves to a link-local address; "
                                      "--allow-private-callbacks opens it")
        assert [a["host"] for a in await resolver.resolve("local.test", 80)] == ["127.0.0.1", "::1"]
        with pytest.raises(EgressRefused, match="local.test resolves to a loopback address"):
            await _Resolver(SERVER, Answers(table)).resolve("local.test", 80)

    asyncio.run(main())


def test_the_socket_factory_refuses_before_a_socket_exists() -> None:
    for sockaddr in (("169.254.169.254", 80), ("10.0.0.1", 443), ("127.0.0.1", 80)):
        with pytest.raises(EgressRefused, match=f"refused: {sockaddr[0]} is a"):
            SERVER.socket((socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", sockaddr))
    with pytest.raises(EgressRefused, match="refused: fe80::1 is a link-local address"):
        DEV.socket((socket.AF_INET6, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", ("fe80::1", 80, 0, 0)))
    sock = DEV.socket((socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", ("127.0.0.1", 80)))
    sock.close()


def post_through_egress(policy: Policy, url: str, table: dict[str, list[str]]) -> int | EgressRefused:
    async def main() -> int | EgressRefused:
        egress = Egress(policy, timeout_seconds=5, user_agent="test", resolver=Answers(table))
        try:
            return await egress.post(url, b"{}", {"Content-Type": "application/json"})
        except EgressRefused as exc:
            return exc
        finally:
            await egress.close()

    return asyncio.run(main())


def test_a_name_that_resolves_to_loopback_when_dialled_is_never_called_unless_opened() -> None:
    """DNS rebinding: what a name resolves to when the POST is made is what counts."""
    with Receiver() as receiver:
        port = receiver.server.server_address[1]
        rebound = {"rebind.test": ["127.0.0.1"]}
        outcome = post_through_egress(SERVER, f"http://rebind.test:{port}/hooks", rebound)
        assert isinstance(outcome, EgressRefused)
        assert str(outcome) == "refused: rebind.test resolves to a loopback address; --allow-private-callbacks opens it"
        literal = post_through_egress(SERVER, receiver.url, {})  # a literal address never reaches the resolver
        assert isinstance(literal, EgressRefused)
        assert str(literal) == "refused: 127.0.0.1 is a loopback address; --allow-private-callbacks opens it"
        assert receiver.posts == []
        opened = Policy(networks=(ip_network("127.0.0.0/8"),))
        assert post_through_egress(opened, f"http://rebind.test:{port}/hooks", rebound) == 200
        assert post_through_egress(opened, receiver.url, {}) == 200
        assert len(receiver.posts) == 2


def test_a_redirect_is_not_followed() -> None:
    with Receiver(default=302) as receiver:  # a redirect to anywhere is a failed attempt, never a second request
        assert post_through_egress(DEV, receiver.url, {}) == 302
        assert len(receiver.posts) == 1


# ---------------------------------------------------------------------------------------------
# the real runtime


def loopback_alias() -> str:
    """A name other than localhost that the system resolves to 127.x (from /etc/hosts): the runtime cannot tell
    at create time that it is internal, so only the check when it is dialled stops it."""
    for line in Path("/etc/hosts").read_text().splitlines():
        fields = line.split("#", 1)[0].split()
        if fields and fields[0].startswith("127."):
            for name in fields[1:]:
                if name != "localhost" and not name.endswith(".localhost") and \
                        socket.gethostbyname(name).startswith("127."):
                    return name
    pytest.fail("these tests need a host name other than localhost for 127.0.0.1 in /etc/hosts (e.g. the "
                "machine's own name); none was found")


def server_runtime(backend: str, workdir: Path, extra: list[str]) -> RuntimeProcess:
    if backend == "sqlite":
        return RuntimeProcess(workdir, command="server", database_url=f"sqlite:///{workdir / 'server.db'}",
                              extra_args=extra)
    return RuntimeProcess(workdir, command="server", backend=backend, extra_args=extra)


@pytest.fixture(scope="module")
def server(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RuntimeProcess]:
    rt = server_runtime(backend, tmp_path_factory.mktemp("ssrf-server"), FAST).start()
    yield rt
    rt.retire()


def agent_key(rt: RuntimeProcess) -> tuple[str, str, str]:
    """A new agent: (address, key, service account id)."""
    with rt.client() as admin:
        address, key = make_agent(admin, unique("prober"))
        sa_id = admin.get(f"/v1/agents/{address.removeprefix('agent://')}").json()["agent"]["service_account_id"]
    return address, key, sa_id


def subscribe(agent: httpx.Client, url: str) -> httpx.Response:
    return agent.post("/v1/webhooks/subscriptions", json={"callback_url": url, "event_types": [EVENT["event_type"]]})


def assert_refused(r: httpx.Response, what: str) -> None:
    assert r.status_code == 422, r.text
    body = r.json()
    assert body["error"]["code"] == "callback_url_refused"
    assert body["error"]["details"] == {"field": "callback_url"}
    assert body["error"]["message"] == f"callback_url: refused: {what}; --allow-private-callbacks opens it"
    assert body["detail"] == body["error"]["message"]


def test_server_refuses_internal_callback_urls_at_create_time(server: RuntimeProcess) -> None:
    _, key, sa_id = agent_key(server)
    with Receiver() as receiver, server.client(key) as agent:
        port = receiver.server.server_address[1]
        for url, what in ((receiver.url, "127.0.0.1 is a loopback address"),
                          (f"http://[::1]:{port}/hooks", "::1 is a loopback address"),
                          (f"http://localhost:{port}/hooks", "localhost is a loopback address"),
                          (f"http://127.1:{port}/hooks", "127.0.0.1 is a loopback address"),
                          ("http://169.254.169.254/latest/meta-data/", "169.254.169.254 is a link-local address"),
                          ("http://[fd00::1]/", "fd00::1 is a private address"),
                          ("http://10.0.0.1/", "10.0.0.1 is a private address")):
            assert_refused(subscribe(agent, url), what)
            r = agent.patch(f"/v1/service-accounts/{sa_id}/delivery",
                            json={"delivery_mode": "http", "callback_url": url})
            assert_refused(r, what)
        assert agent.get("/v1/webhooks/subscriptions").json()["subscriptions"] == []
        assert agent.get(f"/v1/service-accounts/{sa_id}/delivery").json()["delivery"]["delivery_mode"] == "stream"
        r = agent.post("/v1/webhooks/subscriptions", json={"callback_url": "ftp://hooks.example.com/x",
                                                           "event_types": [EVENT["event_type"]]})
        assert r.status_code == 422 and "callback_url" in r.text
        assert receiver.posts == []


def test_server_never_calls_a_name_that_resolves_to_loopback(server: RuntimeProcess) -> None:
    alias = loopback_alias()
    address, key, sa_id = agent_key(server)
    with Receiver() as receiver, server.client(key) as agent, server.client() as admin:
        url = receiver.url.replace("127.0.0.1", alias)
        r = subscribe(agent, url)
        assert r.status_code == 200, r.text  # a name: checked when it is dialled
        assert agent.post("/v1/webhooks/events", json=EVENT).status_code == 200
        # the http binding: an intent to an agent whose callback is that name
        http_address, _, http_sa = agent_key(server)
        r = admin.patch(f"/v1/service-accounts/{http_sa}/delivery", json={"delivery_mode": "http", "callback_url": url})
        assert r.status_code == 200, r.text
        intent_id = admin.post("/v1/intents", json=new_intent(http_address)).json()["intent_id"]

        def refused(query: str) -> Any:
            rows = admin.get(f"/v1/webhooks/deliveries?{query}").json()["deliveries"]
            return rows if rows and all(d["attempts"] >= 1 for d in rows) else None

        expected = f"refused: {alias} resolves to a loopback address; --allow-private-callbacks opens it"
        for query in (f"owner_agent={address}", f"intent_id={intent_id}"):
            rows = poll(lambda q=query: refused(q), lambda v: v is not None)
            assert len(rows) == 1
            assert rows[0]["last_error"] == expected  # the kind of address, nothing learnt from a service
            assert "last_status_code" not in rows[0]
            assert rows[0]["status"] in ("pending", "failed", "dead_lettered")  # never delivered
        assert receiver.posts == []


def test_allow_private_callbacks_opens_a_network(tmp_path: Path) -> None:
    """`--allow-private-callbacks 127.0.0.0/8` lets the same URLs through, so the refusals above are the policy's
    doing, not a broken receiver."""
    alias = loopback_alias()
    rt = server_runtime("sqlite", tmp_path, [*FAST, "--allow-private-callbacks", "127.0.0.0/8"]).start()
    try:
        address, key, _ = agent_key(rt)
        with Receiver() as receiver, rt.client(key) as agent:
            for url in (receiver.url, receiver.url.replace("127.0.0.1", alias)):
                assert subscribe(agent, url).status_code == 200
            assert_refused(subscribe(agent, "http://169.254.169.254/"), "169.254.169.254 is a link-local address")
            assert_refused(subscribe(agent, f"http://[::1]:{receiver.server.server_address[1]}/"),
                           "::1 is a loopback address")  # only what was opened
            assert agent.post("/v1/webhooks/events", json=EVENT).status_code == 200
            assert len(receiver.wait_posts(2)) == 2
    finally:
        rt.stop()


def test_dev_on_loopback_calls_loopback_but_never_link_local(tmp_path: Path) -> None:
    rt = RuntimeThread(tmp_path, extra_args=FAST).start()
    try:
        _, key, sa_id = agent_key(rt)
        with Receiver() as receiver, rt.client(key) as agent:
            assert subscribe(agent, receiver.url).status_code == 200
            for url in ("http://169.254.169.254/latest/meta-data/", "http://[fe80::1]/"):
                what = f"{url.split('/')[2].strip('[]')} is a link-local address"
                assert_refused(subscribe(agent, url), what)
                assert_refused(agent.patch(f"/v1/service-accounts/{sa_id}/delivery",
                                           json={"delivery_mode": "http", "callback_url": url}), what)
            assert_refused(subscribe(agent, "http://10.1.2.3/"), "10.1.2.3 is a private address")
            assert agent.post("/v1/webhooks/events", json=EVENT).status_code == 200
            assert len(receiver.wait_posts(1)) == 1
    finally:
        rt.stop()


def test_dev_bound_beyond_loopback_takes_the_server_defaults(tmp_path: Path) -> None:
    rt = RuntimeProcess(tmp_path, extra_args=[*FAST, "--host", "0.0.0.0"]).start()
    rt.url = rt.url.replace("0.0.0.0", "127.0.0.1")
    try:
        _, key, _ = agent_key(rt)
        with Receiver() as receiver, rt.client(key) as agent:
            assert_refused(subscribe(agent, receiver.url), "127.0.0.1 is a loopback address")
    finally:
        rt.stop()


def test_a_bad_cidr_is_a_usage_error(tmp_path: Path) -> None:
    rt = RuntimeProcess(tmp_path, extra_args=["--allow-private-callbacks", "10.0.0.0/33"])
    with pytest.raises(RuntimeError, match="--allow-private-callbacks"):
        rt.start(timeout=20)



def test_server_refuses_an_internal_callback_url_of_an_agent_a_scenario_provisions(server: RuntimeProcess) -> None:
    bundle = json.loads((Path(__file__).resolve().parents[2] / "scenarios" / "order-saga.json").read_text())
    bundle["agents"][0].update({"create_if_missing": True, "delivery_mode": "http",
                                "callback_url": "http://169.254.169.254/latest/meta-data/"})
    with server.client() as admin:
        before = admin.get("/v1/service-accounts").json()
        r = admin.post("/v1/scenarios/apply", json=bundle)
        assert r.status_code == 422, r.text
        error = r.json()["error"]
        assert error["code"] == "callback_url_refused"
        assert error["details"] == {"field": "agents[0].callback_url"}
        assert "169.254.169.254 is a link-local address" in error["message"]
        assert admin.get("/v1/service-accounts").json() == before  # nothing was provisioned
