"""One worker process of tests/test_redis_limiter.py: its own Session, the budget in Redis.

Prints ``ready`` once connected, waits for ``go`` on stdin (so that every worker starts at the
same moment), then takes work from a shared Redis list until it is empty:

* ``submit``: each item is a prompt; it is submitted and ``submitted <prompt> <run_id>`` printed;
* ``poll``: each item is a run id; one status poll is made and ``polled <run_id>`` printed.

Ends with ``done``. Run it as ``python tests/redis_worker.py --help``.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

import redis.asyncio as aioredis

import aiovideoextend as ave
from aiovideoextend.redis_limiter import RedisRateLimiter

MODEL = "wan-wavespeed-22-spicy-extend"


async def work(session: ave.Session, queue: aioredis.Redis, key: str, mode: str) -> None:
    while (item := await queue.lpop(key)) is not None:
        text = item.decode()
        if mode == "submit":
            job = await session.extend(MODEL, text, video_url=f"https://example.com/{text}.mp4")
            print("submitted", text, job.run_id, flush=True)
        else:
            await session.status(text)
            print("polled", text, flush=True)


async def main(args: argparse.Namespace) -> None:
    limits = ave.Limits().scaled(args.scale)
    async with (
        aioredis.Redis.from_url(args.redis) as queue,
        RedisRateLimiter(args.redis, limits, prefix=args.prefix, lease=args.lease) as limiter,
        ave.Session(
            args.api_key, base_url=args.base_url, time_scale=args.scale, limiter=limiter
        ) as session,
    ):
        await queue.ping()
        print("ready", flush=True)
        if (await asyncio.to_thread(sys.stdin.readline)).strip() != "go":
            return
        key = f"{args.prefix}:queue"
        await asyncio.gather(*(work(session, queue, key, args.mode) for _ in range(args.tasks)))
    print("done", flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--redis", required=True)
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--api-key", required=True)
    parser.add_argument("--prefix", required=True)
    parser.add_argument("--mode", choices=["submit", "poll"], default="submit")
    parser.add_argument("--scale", type=float, default=60.0)
    parser.add_argument("--lease", type=float, default=30.0)
    parser.add_argument("--tasks", type=int, default=20)
    asyncio.run(main(parser.parse_args()))
