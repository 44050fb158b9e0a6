"""A status endpoint that always answers the same nested "in progress" body, in its own process.

Run by the CPU and memory benchmarks so that the server's CPU and memory are not the client's:
``python bench/_static_server.py`` prints its port, then serves until stdin closes.
"""

from __future__ import annotations

import asyncio
import json
import sys

from aiohttp import web

BODY = json.dumps(
    {
        "requestId": "x",
        "model": "wan-wavespeed-25-extend",
        "data": {"requestId": "x", "status": "IN_PROGRESS", "details": "Video is being generated"},
    }
).encode()


async def main() -> None:
    served = 0

    async def status(_request: web.Request) -> web.Response:
        nonlocal served
        served += 1
        return web.Response(body=BODY, content_type="application/json")

    async def count(_request: web.Request) -> web.Response:
        return web.json_response({"served": served})

    app = web.Application()
    app.router.add_get("/api/video/status", status)
    app.router.add_get("/count", count)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    print(runner.addresses[0][1], flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    await runner.cleanup()


if __name__ == "__main__":
    asyncio.run(main())
