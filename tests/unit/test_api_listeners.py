"""A serving process's share of new connections follows its listening sockets in the port's
SO_REUSEPORT group (`start_site(listeners=...)`, `kustos api --listeners`)."""

from __future__ import annotations

import asyncio
import http.client
import socket
from collections import Counter

from aiohttp import web

from kustos.cli.api_cmd import start_site
from kustos.cli.api_processes import WORKER_LISTENERS, serving_argv


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _named(name: str) -> web.Application:
    async def who(request: web.Request) -> web.Response:
        return web.Response(text=name)

    app = web.Application()
    app.router.add_get("/who", who)
    return app


def _ask(port: int) -> str:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", "/who")
        return conn.getresponse().read().decode()
    finally:
        conn.close()  # every request on a new connection: the kernel picks a socket for each


def test_two_listeners_take_about_two_thirds_of_new_connections() -> None:
    port = _free_port()
    connections = 600

    async def scenario() -> Counter[str]:
        one = await start_site(_named("one"), "127.0.0.1", port, None, reuse_port=True)
        two = await start_site(_named("two"), "127.0.0.1", port, None, reuse_port=True, listeners=2)
        try:
            assert len(one.sites) == 1 and len(two.sites) == 2
            answers = [await asyncio.to_thread(_ask, port) for _ in range(connections)]
        finally:
            await one.cleanup()
            await two.cleanup()
        return Counter(answers)

    seen = asyncio.run(scenario())
    share = seen["two"] / connections
    # 2/3 expected (binomial sd 0.019); an equal split would give 0.5 (sd 0.02)
    assert 0.58 <= share <= 0.76, seen


def test_without_reuse_port_there_is_one_listener() -> None:
    async def scenario() -> int:
        runner = await start_site(_named("x"), "127.0.0.1", _free_port(), None, listeners=2)
        try:
            return len(runner.sites)
        finally:
            await runner.cleanup()

    assert asyncio.run(scenario()) == 1


def test_the_serving_children_listen_twice() -> None:
    argv = serving_argv("127.0.0.1", 8443, "kustos-api-tls", False, "/run/hub.sock")
    assert argv[argv.index("--listeners") + 1] == str(WORKER_LISTENERS) == "2"
