"""Logins throttle the attacker, not the user: failures count per source address and user id,
a spent failure budget slows the addresses that failed by a bounded delay and refuses
nobody, and scrypt runs on a bounded number of threads served address by address.

Requests come from real source addresses: Linux routes all of 127.0.0.0/8 to the loopback,
so a client bound to 127.0.0.2 reaches the test server as `request.remote == "127.0.0.2"`.
"""

from __future__ import annotations

import asyncio
import html
import re
import threading
import uuid
from collections.abc import Callable

import aiohttp
import pytest

import schedd.accounts
from schedd import config
from schedd.accounts import AddressHistory, FailureBudget, HashSlots
from schedd.http.common import ACCOUNTS
from tests.support.api import PASSWORD

LOGIN = "/authService/accounts/login"
X, Y = "127.0.0.2", "127.0.0.3"  # the attacker's address, and the user's


@pytest.fixture
async def from_address():
    """`login(api, address, userid, password)` through HTTP from that source address."""
    sessions: dict[str, aiohttp.ClientSession] = {}

    async def login(api, address: str, userid: str, password: str) -> tuple[int, dict]:
        client = api.client
        if address not in sessions:
            # limit=0: a burst is sent at once, not 100 connections at a time.
            sessions[address] = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0, local_addr=(address, 0)))
        form = {"userid": userid, "password": password}
        async with sessions[address].post(client.make_url(LOGIN), data=form) as r:
            return r.status, await r.json(content_type=None)

    yield login
    for session in sessions.values():
        await session.close()


async def until(predicate: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    """Let the server work (it shares this loop) until `predicate` holds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting until {what}")
        await asyncio.sleep(0.005)


# -- per source address and user id ---------------------------------------------------------

async def test_five_wrong_passwords_from_one_address_do_not_lock_the_user_out_from_another(api, from_address):
    for i in range(5):
        assert (await from_address(api, X, "alice", f"wrong guess {i}"))[0] == 401
    status, body = await from_address(api, X, "alice", PASSWORD)
    assert status == 429 and body["status"] == "FAIL"  # X is locked out of alice, even with the password
    status, body = await from_address(api, Y, "alice", PASSWORD)
    assert status == 200, body  # alice, from her own address, is not
    assert body["claims_token"]["value"].startswith("sd_")


async def test_the_count_is_per_address_and_user_id(api, from_address, clock):
    for i in range(4):
        assert (await from_address(api, X, "alice", f"wrong {i}"))[0] == 401
        assert (await from_address(api, X, "bob", f"wrong {i}"))[0] == 401
        assert (await from_address(api, Y, "alice", f"wrong {i}"))[0] == 401
    # Four failures each: X's fifth at alice locks X out of alice only.
    assert (await from_address(api, X, "alice", "wrong 4"))[0] == 401
    assert (await from_address(api, X, "alice", PASSWORD))[0] == 429
    assert (await from_address(api, X, "bob", PASSWORD))[0] == 200
    assert (await from_address(api, Y, "alice", PASSWORD))[0] == 200
    clock.advance(61)
    assert (await from_address(api, X, "alice", PASSWORD))[0] == 200


async def test_the_operator_view_login_is_counted_per_address_too(api):
    """/ui/login goes through the same guard: a browser at X locked out of alice, alice at Y not."""
    async def browser_login(address: str, password: str) -> int:
        jar = aiohttp.CookieJar(unsafe=True)
        async with aiohttp.ClientSession(cookie_jar=jar,
                                         connector=aiohttp.TCPConnector(local_addr=(address, 0))) as session:
            url = api.client.make_url("/ui/login")
            async with session.get(url) as response:
                csrf = re.search(r'name="csrf" value="([^"]+)"', await response.text())
            assert csrf is not None
            form = {"userid": "alice", "password": password, "csrf": html.unescape(csrf.group(1))}
            async with session.post(url, data=form, allow_redirects=False,
                                    headers={"Origin": f"http://{url.host}:{url.port}"}) as response:
                return response.status

    for i in range(5):
        assert await browser_login(X, f"wrong {i}") == 401
    assert await browser_login(X, PASSWORD) == 429
    assert await browser_login(Y, PASSWORD) == 303


async def test_x_forwarded_for_is_ignored_unless_the_proxy_is_trusted(api):
    for i in range(5):
        response, _ = await api.call("POST", LOGIN, None, data={"userid": "alice", "password": f"wrong {i}"},
                                     headers={"X-Forwarded-For": f"203.0.113.{i}"})
        assert response.status == 401
    response, _ = await api.call("POST", LOGIN, None, data={"userid": "alice", "password": PASSWORD},
                                 headers={"X-Forwarded-For": "198.51.100.7"})
    assert response.status == 429  # every attempt came from the peer, 127.0.0.1


async def test_behind_a_trusted_proxy_the_forwarded_address_is_the_one_counted(make_api):
    api = await make_api(auth={"trusted_proxies": ["127.0.0.0/8", "10.0.0.1"]})

    async def login(forwarded: str, password: str) -> int:
        response, _ = await api.call("POST", LOGIN, None, data={"userid": "alice", "password": password},
                                     headers={"X-Forwarded-For": forwarded})
        return response.status

    for i in range(5):
        assert await login("203.0.113.5", f"wrong {i}") == 401
    assert await login("203.0.113.5", PASSWORD) == 429
    # Hops are read from the right: a client cannot hide behind an address it writes itself,
    # and hops that are trusted proxies are skipped.
    assert await login("198.51.100.7, 203.0.113.5", PASSWORD) == 429
    assert await login("203.0.113.5, 10.0.0.1", PASSWORD) == 429
    assert await login("198.51.100.7", PASSWORD) == 200
    assert await login("203.0.113.5, 198.51.100.8", PASSWORD) == 200


# -- a burst of bad logins does not delay a real one ------------------------------------------

async def test_a_burst_of_400_bad_logins_does_not_put_a_real_login_behind_them(
        api, from_address, monkeypatch, clock):
    accounts = api.client.app[ACCOUNTS]
    concurrency = accounts.config.login_hash_concurrency
    real = schedd.accounts.verify_password
    release = threading.Event()
    order: list[str] = []
    running, peak = [0], [0]
    lock = threading.Lock()

    def counted(password: str, encoded: str) -> bool:
        with lock:
            order.append(password)
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        try:
            if password.startswith("guess"):
                release.wait(60)  # the attacker's hashes hold their slots until the user's login is queued
                return False  # a wrong guess: its scrypt is not what this test measures
            return real(password, encoded)
        finally:
            with lock:
                running[0] -= 1

    monkeypatch.setattr(schedd.accounts, "verify_password", counted)
    attack = [asyncio.create_task(from_address(api, X, f"user-{uuid.uuid4().hex[:12]}", f"guess {i}"))
              for i in range(400)]
    slots, budget = accounts.hashing, accounts.config.login_budget
    # With the defaults, the first 100 spend the failure budget and wait for a hashing slot;
    # the other 300 come from an address with logins unfinished, and wait out the budget.
    await until(lambda: slots.active == concurrency and slots.waiting == budget - concurrency
                and accounts.delayed == 400 - budget, "every bad login holds or waits for a slot, or is delayed")
    response = await api.client.get("/healthz")
    assert response.status == 200  # the loop answers while 400 logins wait

    user = asyncio.create_task(from_address(api, Y, "alice", PASSWORD))
    await until(lambda: slots.waiting == budget - concurrency + 1, "the real login, not delayed, waits for a slot")
    release.set()
    status, body = await user
    assert status == 200, body
    # Queued behind the 98 waiting, the real login waited for the hashes in progress and at most
    # one more from the flooding address: served address by address, not first come first served.
    ahead = order.index(PASSWORD)
    assert ahead <= concurrency + 1, ahead
    clock.advance(accounts.config.login_max_delay)
    assert [status for status, _ in await asyncio.gather(*attack)] == [401] * 400
    assert peak[0] <= concurrency  # scrypt never ran on more threads than configured
    assert len(order) == 401 and slots.active == 0 and slots.waiting == 0


# -- the global budget slows down, refuses nobody ----------------------------------------------

async def test_a_spent_budget_delays_failing_addresses_only_and_never_refuses_a_right_password(
        make_api, from_address, clock):
    api = await make_api(auth={"login_budget": 3, "login_budget_per_minute": 60, "login_max_delay": "2s"})
    accounts = api.client.app[ACCOUNTS]
    for i in range(3):  # three user ids: no address+user id is locked, but the budget is spent
        assert (await from_address(api, X, f"nobody{i}", "wrong password"))[0] == 401

    # The user's address has not failed: she does not wait.
    status, _ = await asyncio.wait_for(from_address(api, Y, "alice", PASSWORD), 30)
    assert status == 200 and accounts.delayed == 0

    # From the address that failed, even the right password waits (one token's time), then passes.
    pending = asyncio.create_task(from_address(api, X, "bob", PASSWORD))
    await until(lambda: accounts.delayed == 1, "the failing address waits out the budget")
    await asyncio.sleep(0.05)
    assert not pending.done()
    clock.advance(1.0)  # one token a second comes back
    assert (await pending)[0] == 200

    # A flood drives the budget to its bounded debt: the token of the second that passed goes
    # to the first attempt, every later one waits, none more than max_delay, and the user,
    # from her own address, logs in at once meanwhile.
    flood = [asyncio.create_task(from_address(api, X, f"flood{i}", "wrong password")) for i in range(20)]
    await until(lambda: accounts.delayed == 19, "the flood waits")
    status, _ = await asyncio.wait_for(from_address(api, Y, "alice", PASSWORD), 30)
    assert status == 200 and accounts.delayed == 19
    clock.advance(2.0)
    assert [s for s, _ in await asyncio.gather(*flood)] == [401] * 20


def test_an_address_counts_until_its_password_proves_right_and_is_forgotten_after_the_window():
    history = AddressHistory(window=60.0, capacity=2)
    history.attempt("a", 0.0)
    history.attempt("a", 1.0)
    history.succeeded("a")  # one proved right; the other failed and still counts
    assert history.unresolved("a", 2.0) == 1
    assert history.unresolved("a", 61.0) == 0  # 60 s after its last attempt
    history.attempt("b", 2.0)
    history.attempt("c", 3.0)
    assert len(history) == 2 and history.unresolved("a", 3.0) == 0  # the stalest went first


def test_the_budget_delay_is_bounded_and_the_budget_recovers():
    budget = FailureBudget(capacity=10, per_minute=60, max_delay=2.0)
    at = 1000.0
    assert [budget.take(at) for _ in range(10)] == [0.0] * 10
    delays = [budget.take(at) for _ in range(1000)]
    assert delays[0] == 1.0 and max(delays) == 2.0 and delays[-1] == 2.0
    # The debt stops at what max_delay stands for: a flood of any length is over soon after it stops.
    assert budget.take(at + 2.0) == 0.0
    assert budget.tokens == pytest.approx(0.0)
    budget.give_back(at + 2.0)  # a right password returns its token
    assert budget.tokens == pytest.approx(1.0)
    assert budget.take(at + 60.0) == 0.0 and budget.tokens == pytest.approx(9.0)  # whole again, and no more
    assert FailureBudget(capacity=1, per_minute=60, max_delay=0.0).take(at) == 0.0


# -- the hashing slots --------------------------------------------------------------------------

async def test_hash_slots_serve_waiting_addresses_in_turn_and_survive_cancellation():
    slots = HashSlots(1)
    gate = threading.Event()
    done: list[str] = []

    def work(name: str) -> str:
        if name == "x0":
            gate.wait(10)
        done.append(name)
        return name

    first = asyncio.create_task(slots.run("x", work, "x0"))
    await until(lambda: slots.active == 1, "x0 holds the slot")
    queued = [asyncio.create_task(slots.run("x", work, f"x{i}")) for i in range(1, 4)]
    gone = asyncio.create_task(slots.run("z", work, "z1"))
    queued.append(asyncio.create_task(slots.run("y", work, "y1")))
    await until(lambda: slots.waiting == 5, "five wait")
    gone.cancel()
    await until(lambda: slots.waiting == 4, "the cancelled one no longer waits")
    gate.set()
    assert await asyncio.gather(first, *queued) == ["x0", "x1", "x2", "x3", "y1"]
    assert done == ["x0", "x1", "y1", "x2", "x3"]  # y was served after one more x, not after all
    assert (slots.active, slots.waiting, slots.started) == (0, 0, 5)


async def test_a_caller_that_stops_waiting_keeps_its_slot_until_the_thread_ends():
    slots = HashSlots(1)
    gate = threading.Event()
    task = asyncio.create_task(slots.run("x", gate.wait, 10))
    await until(lambda: slots.active == 1, "the work holds the slot")
    task.cancel()
    await asyncio.sleep(0.01)
    assert slots.active == 1  # the thread still computes: the limit still counts it
    gate.set()
    await until(lambda: slots.active == 0, "the slot is released when the thread ends")


# -- config ---------------------------------------------------------------------------------------

@pytest.mark.parametrize(("auth", "key"), [
    ({"trusted_proxies": ["proxy.example"]}, "auth.trusted_proxies[0]"),
    ({"trusted_proxies": "10.0.0.1"}, "auth.trusted_proxies"),
    ({"login_max_delay": "2m"}, "auth.login_max_delay"),
    ({"login_hash_concurrency": 0}, "auth.login_hash_concurrency"),
    ({"login_budget": 0}, "auth.login_budget"),
])
def test_bad_login_limits_are_refused_naming_the_key(auth, key):
    with pytest.raises(config.ConfigError) as info:
        config.from_dict({"auth": auth})
    assert info.value.field == key


def test_login_limits_have_bounded_defaults_and_round_trip():
    auth = config.default().auth
    assert (auth.login_max_failures, auth.login_lockout, auth.login_budget, auth.login_budget_per_minute,
            auth.login_max_delay, auth.login_hash_concurrency, auth.trusted_proxies) == (5, 60.0, 100, 60, 2.0, 1, ())
    loaded = config.from_dict({"auth": {"trusted_proxies": ["10.0.0.0/8", "::1", "unix"]}})
    assert loaded.auth.trusted_proxies == ("10.0.0.0/8", "::1/128", "unix")
    assert config.from_dict(config.to_dict(loaded)) == loaded
