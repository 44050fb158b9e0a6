"""The aiohttp.web application: routes, and the pipeline every request goes through.

Pipeline: count the arrival and apply rate limits, fire any armed fault, add latency, run the
route, then let faults that mangle a good answer (truncated JSON, missing fields...) do so.
"""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, Final

import attrs
from aiohttp import web

from ._catalog import MIDJOURNEY_MODEL, precharge_for
from ._errors import RATE_LIMIT_BODY, ApiError, dumps, error_body
from ._files import fake_mp4
from ._limits import LIMITED_ROUTES, format_retry_after
from ._state import Job, JobStatus
from ._validation import bad_request, validate_extend, validate_generate

if TYPE_CHECKING:
    from ._emulator import Emulator

_NESTED: Final = {
    JobStatus.QUEUED: "IN_QUEUE",
    JobStatus.PROCESSING: "IN_PROGRESS",
    JobStatus.COMPLETED: "COMPLETED",
    JobStatus.FAILED: "FAILED",
    JobStatus.CANCELLED: "CANCELED",
}
_RECOVER: Final = {**{status: status.value for status in JobStatus}, JobStatus.QUEUED: "pending"}
_UNKNOWN_STATUS: Final = "WARMING_UP"
_LIMIT_PATTERN: Final = re.compile(r"[0-9]{1,6}")
_BAD_GATEWAY_HTML: Final = (
    b"<!DOCTYPE html>\n<html><head><title>502 Bad Gateway</title></head>\n"
    b"<body><center><h1>502 Bad Gateway</h1></center>\n<hr><center>cloudflare</center>\n"
    b"</body></html>\n"
)


@attrs.frozen
class Reply:
    """A route's answer before faults get a chance to spoil it."""

    status: int
    body: Any = None
    raw: bytes | None = None
    content_type: str = "application/json"
    headers: Mapping[str, str] = attrs.field(factory=dict)
    #: The job a submit created, so a fault that drops the answer can mark it undelivered.
    run_id: str | None = None
    #: Set when a status poll shows a terminal state, for ``stats.first_seen_terminal``.
    terminal_run_id: str | None = None


Route = Callable[[web.Request], Awaitable[Reply]]


def _to_response(reply: Reply) -> web.Response:
    body = reply.raw if reply.raw is not None else dumps(reply.body)
    return web.Response(
        status=reply.status, body=body, content_type=reply.content_type, headers=reply.headers
    )


def _reset(request: web.Request) -> web.Response:
    """Drop the connection without an answer.

    aiohttp then fails to write the returned response, which it treats as a client that went
    away: nothing reaches the wire and nothing is logged as an error.
    """
    transport = request.transport
    if transport is not None:
        transport.abort()
    return web.Response(status=204)


def _drop_status(body: Any) -> None:
    if isinstance(body, dict):
        body.pop("status", None)
        data = body.get("data")
        if isinstance(data, dict):
            data.pop("status", None)


def _missing_fields(route: str, body: Any) -> None:
    """Remove what a client most needs from a good answer."""
    if not isinstance(body, dict):
        return
    if route in ("generate", "extend"):
        for field in ("runId", "id", "taskId"):
            body.pop(field, None)
    elif route in ("status", "legacy_status"):
        _drop_status(body)
    else:
        body.pop("data", None)


def _drop_video_url(body: Any) -> None:
    """A completed job whose answer lacks the video: the client must call that a failure."""
    if isinstance(body, dict):
        body.pop("videoUrl", None)
        data = body.get("data")
        if isinstance(data, dict):
            data.pop("output", None)


def _unknown_status(body: Any) -> None:
    if isinstance(body, dict):
        data = body.get("data")
        target = data if isinstance(data, dict) and "status" in data else body
        target["status"] = _UNKNOWN_STATUS


@attrs.define
class Routes:
    """The route handlers of one emulator, and the pipeline around them."""

    emu: Emulator

    # -- building ---------------------------------------------------------------------------

    def build(self) -> web.Application:
        app = web.Application(
            middlewares=[self._http_errors],
            # Big enough for a data URL over the 4 MB limit, so that the route can answer 413.
            client_max_size=16 * 1024 * 1024,
        )
        app.on_response_prepare.append(self._add_request_id)
        add = app.router.add_route
        add("POST", "/api/generate-video", self._wrap("generate", self.generate))
        add("POST", "/api/generate-video/extend", self._wrap("extend", self.extend))
        add("GET", "/api/video/status", self._wrap("status", self.status))
        add("GET", "/api/generate-video/status", self._wrap("legacy_status", self.legacy_status))
        add("GET", "/api/generate-video/recover", self._wrap("recover", self.recover))
        add("GET", "/files/{name}", self._wrap("files", self.files))
        if self.emu.admin:
            add("GET", "/api/_emulator/state", self._wrap("admin", self.admin))
        return app

    async def _add_request_id(self, _request: web.Request, response: web.StreamResponse) -> None:
        response.headers.setdefault("X-Request-ID", f"req_{uuid.uuid4().hex}")

    @web.middleware
    async def _http_errors(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        """Unknown paths and wrong methods answer in the configured error shape too."""
        try:
            return await handler(request)
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            error = ApiError(exc.status, exc.reason, exc.reason.lower().replace(" ", "_"))
            return _to_response(Reply(exc.status, self._error_body(error)))

    def _error_body(self, error: ApiError) -> dict[str, Any]:
        return error_body(error, self.emu.error_shape, self.emu._error_rng)

    # -- the pipeline -----------------------------------------------------------------------

    def _wrap(self, name: str, route: Route) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def handler(request: web.Request) -> web.Response:
            return await self._dispatch(name, route, request)

        return handler

    async def _dispatch(self, name: str, route: Route, request: web.Request) -> web.Response:
        emu = self.emu
        clock = emu._ensure_clock()
        loop_now = asyncio.get_running_loop().time()
        state = emu._state
        stats = state.stats
        stats.requests[name] += 1
        if name in LIMITED_ROUTES:
            stats.arrivals.append((loop_now, name))
            # The same instant for the limiter and the log, so tests can check windows exactly.
            emulated = (loop_now - clock.start) * clock.time_scale
            wait = emu._limiter.hit(request.remote or "?", name, emulated)
            if wait > 0:
                return self._too_many(name, wait / emu.time_scale)
            stats.admitted.append((loop_now, name))
        fault = emu.faults.pick(name) if name != "admin" else None
        low, high = emu.latency
        if high > 0:
            await asyncio.sleep(emu._latency_rng.uniform(low, high))
        if fault is not None:
            stats.faults[fault.kind] += 1
            early = await self._fault_before(name, fault.kind, fault.status, fault.delay, request)
            if early is not None:
                return early
        state.settle_due(clock, emu.now())
        try:
            reply = await route(request)
        except web.HTTPException as exc:
            # Raised while reading the body (e.g. over client_max_size).
            error = ApiError(exc.status, exc.reason, "request_too_large")
            reply = Reply(exc.status, self._error_body(error))
        except ApiError as error:
            reply = Reply(error.status, self._error_body(error))
        kind = fault.kind if fault is not None else None
        if kind in ("ambiguous", "late_create"):
            if reply.run_id is not None:
                entry = state.jobs[reply.run_id].ledger
                if entry is not None:
                    entry.delivered = False
            return _reset(request)
        if kind == "malformed_json":
            body = reply.raw if reply.raw is not None else dumps(reply.body)
            return _to_response(attrs.evolve(reply, raw=body[: max(1, len(body) // 2)]))
        if kind in ("missing_fields", "unknown_status", "no_video_url") and reply.status < 300:
            if kind == "missing_fields":
                _missing_fields(name, reply.body)
            elif kind == "no_video_url":
                _drop_video_url(reply.body)
            else:
                _unknown_status(reply.body)
            return _to_response(reply)
        if reply.terminal_run_id is not None:
            stats.first_seen_terminal.setdefault(reply.terminal_run_id, loop_now)
        return _to_response(reply)

    def _too_many(self, name: str, real_seconds: float) -> web.Response:
        self.emu._state.stats.rate_limited[name] += 1
        headers = {}
        if self.emu.retry_after:
            headers["Retry-After"] = format_retry_after(real_seconds, self.emu.time_scale > 1)
        return _to_response(Reply(429, RATE_LIMIT_BODY, headers=headers))

    async def _fault_before(
        self,
        name: str,
        kind: str,
        status: int | None,
        delay: float | None,
        request: web.Request,
    ) -> web.Response | None:
        """Answer for faults that replace the route entirely; None lets the route run."""
        if kind == "server_error":
            code = status or 500
            error = ApiError(code, "Internal server error", "internal_error", type="server_error")
            return _to_response(Reply(code, self._error_body(error)))
        if kind == "bad_gateway_html":
            return _to_response(
                Reply(status or 502, raw=_BAD_GATEWAY_HTML, content_type="text/html")
            )
        if kind == "rate_limit":
            return self._too_many(name, delay if delay is not None else 1.0 / self.emu.time_scale)
        if kind == "reset":
            return _reset(request)
        if kind == "slow":
            await asyncio.sleep(30.0 if delay is None else delay)
        elif kind == "late_create":
            # Read the body now: once the client has given up, aiohttp fails any later read,
            # and the point is that the run is created all the same.
            await request.read()
            await asyncio.sleep(delay or 0.0)
        return None

    # -- helpers ----------------------------------------------------------------------------

    def _caller(self, request: web.Request) -> str:
        key = request.headers.get("x-api-key", "").strip()
        if not key:
            scheme, _, token = request.headers.get("Authorization", "").partition(" ")
            if scheme.lower() == "bearer":
                key = token.strip()
        if not key:
            raise ApiError(401, "API key required", "missing_api_key")
        if key not in self.emu._state.balances:
            raise ApiError(401, "Invalid API key", "invalid_api_key")
        return key

    def _owned(self, run_id: str, key: str) -> Job:
        job = self.emu._state.jobs.get(run_id)
        if job is None:
            raise ApiError(404, f"Request {run_id} not found", "not_found")
        if job.key != key:
            raise ApiError(403, "This job belongs to another user", "forbidden")
        return job

    async def _json_object(self, request: web.Request) -> dict[str, Any]:
        raw = await request.read()
        try:
            body = json.loads(raw)
        except ValueError:
            raise bad_request("request body is not valid JSON", "invalid_json") from None
        if not isinstance(body, dict):
            raise bad_request("request body must be a JSON object", "invalid_json")
        return body

    def _charge_check(self, key: str, precharge: float) -> None:
        if self.emu._state.balances[key] < precharge:
            raise ApiError(
                402,
                "Insufficient balance",
                "insufficient_balance",
                type="INSUFFICIENT_BALANCE",
                refund_message="No charge was made.",
                required_balance=precharge,
            )

    def _submitted(self, job: Job) -> dict[str, Any]:
        return {
            "runId": job.run_id,
            "id": job.run_id,
            "status": "pending",
            "model": job.model,
            "cost": job.precharge,
            "paymentSource": "USD",
            "remainingBalance": self.emu._state.balances[job.key],
            "prechargeLabel": f"{job.model} precharge",
        }

    def _created_at(self, job: Job) -> str | None:
        """``createdAt`` as the configured server stamps it: None when it sends none."""
        mode = self.emu.created_at
        if mode == "missing":
            return None
        return self.emu._ensure_clock().iso(job.created_at, coarse=mode == "coarse")

    def _video_url(self, request: web.Request, job: Job) -> str:
        return f"{request.scheme}://{request.host}/files/{job.run_id}.mp4"

    def _poll(self, job: Job) -> JobStatus:
        state = self.emu._state
        state.stats.polls[job.run_id] += 1
        state.stats.poll_times[job.run_id].append(asyncio.get_running_loop().time())
        return state.refresh(job, self.emu.now())

    def _nested_data(self, request: web.Request, job: Job, status: JobStatus) -> dict[str, Any]:
        data: dict[str, Any] = {"status": _NESTED[status]}
        if status is JobStatus.PROCESSING:
            data["details"] = "Video is being generated"
        elif status is JobStatus.COMPLETED:
            data["output"] = {"video": {"url": self._video_url(request, job)}}
            data["cost"] = job.planned_cost
        elif status is JobStatus.FAILED:
            if job.nsfw:
                data["error"] = "Content policy violation"
                data["userFriendlyError"] = "Content flagged by the provider's safety filter."
            else:
                data["error"] = "Provider error: generation failed"
                data["userFriendlyError"] = "The video could not be generated. You were refunded."
            data["isNSFWError"] = job.nsfw
        elif status is JobStatus.CANCELLED:
            data["error"] = "Job was cancelled"
            data["isNSFWError"] = False
            data["userFriendlyError"] = "The job was cancelled. You were refunded."
        return data

    def _flat(self, request: web.Request, job: Job, status: JobStatus) -> dict[str, Any]:
        now = self.emu.now()
        progress: float | None = None
        remaining: float | None = None
        if status is JobStatus.QUEUED:
            progress, remaining = 0, round(job.run_end - now, 3)
        elif status is JobStatus.PROCESSING:
            done = (now - job.queue_end) / (job.run_end - job.queue_end)
            progress, remaining = min(99, int(done * 100)), round(job.run_end - now, 3)
        elif status is JobStatus.COMPLETED:
            progress, remaining = 100, 0
        error = self._nested_data(request, job, status).get("error")
        clock = self.emu._ensure_clock()
        return {
            "requestId": job.run_id,
            "status": status.value,
            "progress": progress,
            "estimatedTimeRemaining": remaining,
            "videoUrl": self._video_url(request, job) if status is JobStatus.COMPLETED else None,
            "error": error,
            # The OpenAPI schema requires the key (nullable): "missing" sends null here.
            "createdAt": self._created_at(job),
            "completedAt": clock.iso(job.run_end) if status.terminal else None,
        }

    # -- routes -----------------------------------------------------------------------------

    async def generate(self, request: web.Request) -> Reply:
        key = self._caller(request)
        body = await self._json_object(request)
        valid = validate_generate(body, self.emu._state.video_lengths)
        self._charge_check(key, valid.precharge)
        job = self.emu._state.create(
            self.emu._ensure_clock(),
            self.emu.now(),
            key=key,
            route="generate",
            model=valid.model,
            payload=body,
            precharge=valid.precharge,
            conversation_uuid=valid.conversation_uuid,
            video_seconds=valid.output_seconds,
        )
        return Reply(202, self._submitted(job), run_id=job.run_id)

    async def extend(self, request: web.Request) -> Reply:
        key = self._caller(request)
        body = await self._json_object(request)
        valid = validate_extend(body)
        parent = self._owned(valid.run_id, key)
        if parent.model != MIDJOURNEY_MODEL:
            raise bad_request(f"{valid.run_id} is not a {MIDJOURNEY_MODEL} run", "invalid_run_id")
        if self.emu._state.refresh(parent, self.emu.now()) is not JobStatus.COMPLETED:
            raise bad_request(f"{valid.run_id} has not completed", "run_not_completed")
        precharge = precharge_for(MIDJOURNEY_MODEL)
        self._charge_check(key, precharge)
        job = self.emu._state.create(
            self.emu._ensure_clock(),
            self.emu.now(),
            key=key,
            route="extend",
            model=MIDJOURNEY_MODEL,
            payload=body,
            precharge=precharge,
            conversation_uuid=parent.conversation_uuid,
            parent_run_id=parent.run_id,
            index=valid.index,
            video_seconds=parent.video_seconds + 5.0,
        )
        reply = self._submitted(job) | {
            "success": True,
            "taskId": job.run_id,
            "message": f"Extending video {valid.index + 1} by 5 seconds...",
        }
        if self.emu.eta:
            reply["eta"] = round(job.run_end - job.created_at)
        return Reply(202, reply, run_id=job.run_id)

    async def status(self, request: web.Request) -> Reply:
        key = self._caller(request)
        run_id = request.query.get("requestId") or request.query.get("runId")
        if not run_id:
            raise bad_request("requestId (or runId) is required", "missing_request_id")
        job = self._owned(run_id, key)
        status = self._poll(job)
        if job.envelope == "flat":
            body = self._flat(request, job, status)
        else:
            data = {"requestId": job.run_id, **self._nested_data(request, job, status)}
            body = {"requestId": job.run_id, "model": job.model, "data": data}
        return Reply(200, body, terminal_run_id=job.run_id if status.terminal else None)

    async def legacy_status(self, request: web.Request) -> Reply:
        key = self._caller(request)
        run_id = request.query.get("runId")
        model = request.query.get("model") or request.query.get("modelSlug")
        if not run_id:
            raise bad_request("runId is required", "missing_run_id")
        if not model:
            raise bad_request("model (or modelSlug) is required", "missing_model")
        job = self._owned(run_id, key)
        if model != job.model:
            raise bad_request(f"{run_id} was not made with {model}", "model_mismatch")
        status = self._poll(job)
        data = {"request_id": job.run_id, **self._nested_data(request, job, status)}
        return Reply(200, {"data": data}, terminal_run_id=job.run_id if status.terminal else None)

    async def recover(self, request: web.Request) -> Reply:
        key = self._caller(request)
        raw_limit = request.query.get("limit", "10")
        if not _LIMIT_PATTERN.fullmatch(raw_limit) or not 1 <= int(raw_limit) <= 50:
            raise bad_request("limit must be an integer from 1 to 50", "invalid_limit")
        limit = int(raw_limit)
        model = request.query.get("model")
        conversation = request.query.get("conversationUUID")
        state, now = self.emu._state, self.emu.now()
        runs: list[dict[str, Any]] = []
        for job in reversed(state.by_key[key]):
            if len(runs) == limit:
                break
            if model and job.model != model:
                continue
            if conversation and job.conversation_uuid != conversation:
                continue
            row = {
                "runId": job.run_id,
                "id": job.run_id,
                "model": job.model,
                "status": _RECOVER[state.refresh(job, now)],
                "createdAt": self._created_at(job),
                "conversationUUID": job.conversation_uuid,
            }
            if row["createdAt"] is None:
                del row["createdAt"]
            runs.append(row)
        return Reply(200, {"data": runs})

    async def files(self, request: web.Request) -> Reply:
        run_id = request.match_info["name"].removesuffix(".mp4")
        job = self.emu._state.jobs.get(run_id)
        if job is None or job.status_at(self.emu.now()) is not JobStatus.COMPLETED:
            raise ApiError(404, "No such video", "not_found")
        return Reply(
            200,
            raw=fake_mp4(run_id, self.emu.video_size, job.video_seconds),
            content_type="video/mp4",
        )

    async def admin(self, _request: web.Request) -> Reply:
        state = self.emu._state
        body = {
            "now": self.emu.now(),
            "balances": state.balances,
            "ledger": [attrs.asdict(entry) for entry in state.ledger],
            "stats": attrs.asdict(state.stats),
            "duplicateCharges": state.duplicate_charges(),
        }
        return Reply(200, body)
