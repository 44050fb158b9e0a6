"""The public API used the way a user would: type-checked by ``mypy --strict``, never run.

Nothing here is called. pytest collects only ``test_*.py``, so this file is not a test.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiovideoextend as ave
from aiovideoextend import exceptions


def on_event(event: ave.Event) -> None:
    if event.kind is ave.EventKind.RATE_LIMITED and event.delay is not None:
        print(f"{event.budget}: waiting {event.delay:.1f}s")


async def extend_one(session: ave.Session) -> ave.VideoResult:
    job: ave.Job = await session.extend(
        "veo3-1-extend",
        "the camera keeps panning",
        video_url="https://cdn.example.com/clip.mp4",
        resolution="720p",
        duration=5,
        seed=-1,
        generate_audio=True,
    )
    result: ave.VideoResult = await job
    url: str = result.video_url
    cost: float | None = result.cost
    print(url, cost, job.run_id, job.model, job.status.is_terminal)
    return result


async def extend_file(session: ave.Session, path: Path) -> str | None:
    job = await session.extend("wan-wavespeed-25-extend", "more", video_file=path)
    submission: ave.Submission | None = job.submission
    if submission is not None:
        print(submission.run_id, submission.cost, submission.status.value)
    try:
        result = await job.result(timeout=600)
    except ave.JobTimeoutError as exc:
        run_id: str = exc.run_id
        print("still running:", run_id)
        return None
    except ave.JobFailedError as exc:
        reason: str | None = exc.user_friendly_error or exc.error
        nsfw: bool = exc.is_nsfw
        print(reason, nsfw)
        return None
    except ave.JobCancelledError as exc:
        print("cancelled", exc.run_id)
        return None
    saved: Path = await job.download(Path("out"), overwrite=True)
    print(saved)
    return result.completed_at


async def midjourney(session: ave.Session) -> None:
    job = await session.extend_midjourney("vid_m1abc123def456", index=2)
    async for update in job.updates():
        status: ave.JobStatus = update.status
        progress: float | None = update.progress
        print(status.value, progress, update.video_url, update.raw_status)
    forever = await job.result(timeout=None)
    default = await job.result(timeout=ave.USE_POLICY_DEFAULT)
    print(forever == default)


async def attach_and_recover(session: ave.Session) -> list[str]:
    job = session.job("vid_mla1k3lja967ue22b", model="veo3-1-extend")
    update: ave.StatusUpdate = await job.refresh()
    once: ave.StatusUpdate = await session.status(job.run_id)
    runs: list[ave.RecoveredRun] = await session.recover(model="veo3-1-extend", limit=20)
    print(update.status, once.eta)
    return [run.run_id for run in runs if run.status is ave.JobStatus.COMPLETED]


async def explicit_requests(session: ave.Session) -> None:
    request: ave.SourceExtend | ave.MidjourneyExtend = ave.SourceExtend(
        "veo3-1-fast-extend",
        "go on",
        video_attachment_id="att_1",
        options={"aspect_ratio": "16:9"},
    )
    key: str = request.key
    job = await session.submit(request)
    job2 = await session.submit(ave.MidjourneyExtend("vid_1", 0))
    print(key, job.done(), job2.done())


async def one_call(session: ave.Session) -> list[str]:
    result: ave.VideoResult = await session.extend_and_wait(
        "veo3-1-extend", "go on", video_url="https://cdn.example.com/clip.mp4", duration=5
    )
    other = await session.extend_midjourney_and_wait("vid_m1abc123def456", 1, timeout=None)
    third = await session.run(ave.MidjourneyExtend("vid_1"), timeout=ave.USE_POLICY_DEFAULT)
    options: ave.ExtendOptions = {"seed": 3, "generate_audio": False}
    job = await session.extend("veo3-1-extend", "p", video_url="https://e.com/a.mp4", **options)
    async for update in job.updates():
        estimated: float | None = update.estimated_progress
        left: float | None = update.estimated_remaining
        print(estimated, left)
    interrupted: tuple[ave.Job, ...] = session.interrupted_jobs
    return [result.run_id, other.run_id, third.run_id, *(j.run_id for j in interrupted)]


async def typed_options_reject_typos(session: ave.Session) -> None:
    # Each line must be an error: mypy --strict reports an unused "type: ignore" otherwise.
    await session.extend("veo3-1-extend", "p", video_url="https://e.com/a.mp4", duraton=5)  # type: ignore[call-arg]
    await session.extend("veo3-1-extend", "p", video_url="https://e.com/a.mp4", seed="1")  # type: ignore[arg-type]
    await session.extend_and_wait("veo3-1-extend", "p", video_url="https://e.com/a.mp4", promt="x")  # type: ignore[call-arg]


async def errors(session: ave.Session) -> None:
    try:
        await extend_one(session)
    except ave.RateLimitError as exc:
        wait: float | None = exc.retry_after
        print(wait)
    except ave.InsufficientBalanceError as exc:
        needed: float | None = exc.required_balance
        print(needed)
    except ave.EndpointNotFoundError as exc:
        tried: str = exc.url
        print(tried, exc.status_code)
    except ave.APIError as exc:
        status: int = exc.status_code
        code: str | None = exc.code
        request_id: str | None = exc.request_id
        print(status, code, request_id, exc.message, exc.error_type, exc.body)
    except ave.AmbiguousSubmitError as exc:
        candidates: tuple[str, ...] = exc.candidates
        print(exc.model, candidates, exc.cause)
        jobs: list[ave.Job] = session.candidate_jobs(exc)
        print([await job.result() for job in jobs])
    except ave.ResponseDecodeError as exc:
        decode_status: int | None = exc.status_code
        print(decode_status)
    except ave.APIConnectionError as exc:
        unreachable: str = exc.url
        reason: str = exc.reason
        print(unreachable, reason, exc.timed_out)
    except (ave.TransportError, exceptions.VideoExtendError) as exc:
        print(exc)
    except ValueError:  # InvalidRequestError is a ValueError
        pass
    unattributed: tuple[ave.RecoveredRun, ...] = session.unattributed
    print([run.run_id for run in unattributed])


async def main() -> None:
    limits = ave.Limits(
        extend=ave.Budget(20, 60.0),
        generate=ave.Budget(50, 60.0),
        overall=ave.Budget(25, 1.0),
        margin=0.05,
    )
    poll = ave.PollPolicy(first=10.0, min_interval=2.0, max_interval=30.0, timeout=None)
    retries = ave.Retries(attempts=4, base=0.5, cap=10.0)
    timeouts = ave.Timeouts(connect=5.0, total=None)
    limiter = ave.RateLimiter(limits)
    async with ave.Session(
        "sk-nano-00000000-0000-0000-0000-000000000000",
        base_url=ave.DEFAULT_BASE_URL,
        limits=limits,
        poll=poll,
        retries=retries,
        timeout=timeouts,
        limiter=limiter,
        on_event=on_event,
    ) as session:
        session.add_event_hook(on_event)
        results = await asyncio.gather(extend_one(session), extend_one(session))
        print(
            [r.run_id for r in results], ave.__version__, ave.MIDJOURNEY_MODEL in ave.EXTEND_MODELS
        )
        await extend_file(session, Path("clip.mp4"))
        await midjourney(session)
        await attach_and_recover(session)
        await explicit_requests(session)
        await errors(session)
        await one_call(session)
        await typed_options_reject_typos(session)
        session.remove_event_hook(on_event)
    await session.aclose()
