"""The server interceptor every service installs: the server span and the
platform's own stages (request context, auth, deadline guard, error mapping),
skipping health and reflection.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, NoReturn

import asyncpg
import grpc
from grpc_status import rpc_status
from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.trace import Status, StatusCode

from services.platform import errors, semconv
from services.platform.callctx import call_deadline, request_id, rpc_method
from services.platform.handlers import (
    Handler,
    Malformed,
    StreamBehavior,
    UnaryBehavior,
    hear_out,
    method_parts,
    wrap_handler,
)
from services.platform.principal import ANONYMOUS, Allow, Policy, current_principal
from services.platform.ratelimit import RateLimiter
from services.platform.rpc_metrics import RPC_DURATIONS, Attributes, DurationHistogram
from services.platform.server_span import ServerSpan, ServerSpans
from services.platform.tokens import TokenVerifier

log = logging.getLogger("venue.rpc")

# The status the current call ends with, and its message (for the span).
_outcome: contextvars.ContextVar[tuple[grpc.StatusCode, str]] = contextvars.ContextVar(
    "outcome", default=(grpc.StatusCode.OK, "")
)
_OK = (grpc.StatusCode.OK, "")
# A client-streaming call's request iterator, to hear out before it is ended.
_unheard: contextvars.ContextVar[Any] = contextvars.ContextVar("unheard", default=None)

# The codes that mark a server span as failed (as OpenTelemetry's gRPC
# instrumentation does): the server's fault, not the caller's.
SERVER_ERRORS = frozenset(
    {
        grpc.StatusCode.UNKNOWN,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.UNIMPLEMENTED,
        grpc.StatusCode.INTERNAL,
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DATA_LOSS,
    }
)
# Metadata that carries the caller's trace context (W3C trace context, baggage).
_PROPAGATED = frozenset({"traceparent", "tracestate", "baggage"})
_EMPTY_CONTEXT = otel_context.Context()

# Services that answer without credentials: load balancers, grpcurl and
# Kubernetes probes expect health and reflection to be open.
PUBLIC_SERVICES = frozenset(
    {
        "grpc.health.v1.Health",
        "grpc.reflection.v1alpha.ServerReflection",
        "grpc.reflection.v1.ServerReflection",
    }
)


class CallOver(asyncio.CancelledError):
    """The call ended before its status could be sent: its deadline passed or its
    caller went away, and gRPC has already told the caller so.

    Raised in place of a second abort (which gRPC refuses with "Abort already
    called"). A CancelledError, because that is how gRPC itself ends a call it
    has cancelled: quietly, and past the servicer's `except Exception`."""


async def abort(context: grpc.aio.ServicerContext[Any, Any], err: errors.DomainError) -> NoReturn:
    _outcome.set((err.code, err.message))
    status = rpc_status.to_status(err.to_status())
    if (requests := _unheard.get()) is not None:
        _unheard.set(None)
        await hear_out(requests)
    try:
        await context.abort(status.code, status.details, status.trailing_metadata)
    except grpc.aio.AbortError:
        raise
    except grpc.aio.BaseError as exc:
        # Sending the status failed in gRPC itself (the call is already over).
        raise CallOver(str(err.code)) from exc
    raise AssertionError("abort returned")  # pragma: no cover - abort always raises


@dataclass
class _Plan:
    """What the interceptor knows of one method before any call arrives."""

    method: str
    name: str
    rule: Allow
    streaming: bool
    client_streaming: bool
    span_attrs: dict[str, str | int]
    # The rpc.server.duration series of each status code.
    metric_series: dict[grpc.StatusCode, Attributes]


@dataclass
class _Metadata:
    token: str = ""
    scheme_ok: bool = True
    request_id: str = ""
    carrier: dict[str, str] | None = None


def _read_metadata(context: Any) -> _Metadata:
    found = _Metadata()
    for key, value in context.invocation_metadata() or ():
        if key == "authorization":
            scheme, _, found.token = str(value).partition(" ")
            found.scheme_ok = scheme.lower() == "bearer"
        elif key == "x-request-id":
            found.request_id = str(value)[:64]
        elif key in _PROPAGATED:
            if found.carrier is None:
                found.carrier = {}
            found.carrier[key] = str(value)
    return found


class PlatformStages:
    """Every call of every service goes through these stages, in this order:

    1. the server span (RPC semantic conventions: rpc.system, rpc.service,
       rpc.method, rpc.grpc.status_code), child of the caller's W3C trace
       context, current for everything the call does;
    2. request context: the request id (the caller's x-request-id, else the trace
       id) and the method go into context variables that logs carry;
    3. auth: the bearer token becomes the principal, and the method's policy must
       admit it (a method with no policy admits nobody);
    4. deadline guard: a call whose deadline is as good as gone is refused, and the
       deadline is kept so outgoing calls carry what is left of it;
    5. error mapping: domain errors become their status with details; anything
       else becomes INTERNAL, its detail only in logs and spans;
    and the RPC duration is recorded with its status code.

    The stages share one wrapper, built once per method when the service
    registers it (registration.py), because each extra layer of wrapping costs
    every call on the hot path (see bench/foundation.py): a grpc.aio server
    interceptor alone costs a coroutine and a handler lookup per call. The span
    is ours rather than OpenTelemetry's gRPC server interceptor: that one
    rebuilds the method handler and a proxy of the servicer context on every
    call, parses the peer address and merges attribute dicts, which together
    cost more CPU than the rest of the platform (bench/results/foundation.json);
    it is started by server_span.py, with the SDK's sampler and processors.
    Health and reflection pass through untouched: probes need no credentials
    and make no spans.
    """

    def __init__(
        self,
        verifier: TokenVerifier,
        policies: Mapping[str, Policy],
        minimum_deadline_s: float = 0.002,
        default_budget_s: float = 30.0,
        limiter: RateLimiter | None = None,
        durations: DurationHistogram | None = None,
    ) -> None:
        self._verifier = verifier
        self._limiter = limiter or RateLimiter.from_env()
        self._policies = policies
        self._minimum = minimum_deadline_s
        self._default = default_budget_s
        self._spans = ServerSpans("venue.rpc")
        self._propagator = propagate.get_global_textmap()
        self._duration: DurationHistogram = durations or RPC_DURATIONS

    def wrap(self, method: str, handler: Handler) -> Handler:
        """`handler` of `method` with the stages around it."""
        service, name = method_parts(method)
        if service in PUBLIC_SERVICES:
            return handler
        base = {"rpc.system": "grpc", "rpc.service": service, "rpc.method": name}
        plan = _Plan(
            method=method,
            name=name,
            rule=self._policies.get(service, {}).get(name, Allow()),
            streaming=handler.unary_stream is not None or handler.stream_stream is not None,
            client_streaming=(
                handler.stream_unary is not None or handler.stream_stream is not None
            ),
            span_attrs={**base, "rpc.grpc.status_code": grpc.StatusCode.OK.value[0]},
            metric_series={
                code: (*base.items(), ("rpc.grpc.status_code", code.value[0]))
                for code in grpc.StatusCode
            },
        )

        def unary(behavior: UnaryBehavior) -> UnaryBehavior:
            async def call(request: Any, context: Any) -> Any:
                started = time.perf_counter()
                meta = _read_metadata(context)
                span, attached = self._start_span(plan, meta)
                if plan.client_streaming:
                    _unheard.set(request)
                try:
                    await self._enter(plan, context, meta, span)
                    if type(request) is Malformed:
                        raise request.error()
                    return await behavior(request, context)
                except grpc.aio.AbortError:
                    self._aborted(context)
                    raise
                except Exception as exc:
                    await self._fail(plan, context, exc, span)
                finally:
                    self._end(plan, started, span, attached)

            return call

        def stream(behavior: StreamBehavior) -> StreamBehavior:
            async def call(request: Any, context: Any) -> AsyncIterator[Any]:
                started = time.perf_counter()
                meta = _read_metadata(context)
                span, attached = self._start_span(plan, meta)
                if plan.client_streaming:
                    _unheard.set(request)
                try:
                    await self._enter(plan, context, meta, span)
                    async for response in behavior(request, context):
                        yield response
                except grpc.aio.AbortError:
                    self._aborted(context)
                    raise
                except Exception as exc:
                    await self._fail(plan, context, exc, span)
                finally:
                    self._end(plan, started, span, attached)

            return call

        return wrap_handler(handler, unary, stream)

    def _start_span(self, plan: _Plan, meta: _Metadata) -> tuple[trace.Span, object]:
        parent = _EMPTY_CONTEXT if meta.carrier is None else self._propagator.extract(meta.carrier)
        span = self._spans.start(plan.method, parent, plan.span_attrs)
        _outcome.set(_OK)
        return span, otel_context.attach(trace.set_span_in_context(span, parent))

    def _end(self, plan: _Plan, started: float, span: trace.Span, attached: object) -> None:
        code, message = _outcome.get()
        if code is not grpc.StatusCode.OK:
            span.set_attribute("rpc.grpc.status_code", code.value[0])
            if code in SERVER_ERRORS:
                span.set_status(Status(StatusCode.ERROR, f"{code}:{message}"))
        span.end()
        otel_context.detach(attached)  # type: ignore[arg-type]
        self._duration.record(plan.metric_series[code], (time.perf_counter() - started) * 1000.0)

    @staticmethod
    def _aborted(context: Any) -> None:
        """A servicer that called context.abort itself: take the code it set."""
        if _outcome.get() is _OK:
            code = context.code()
            if isinstance(code, grpc.StatusCode):
                _outcome.set((code, str(context.details() or "")))

    async def _enter(self, plan: _Plan, context: Any, meta: _Metadata, span: trace.Span) -> None:
        rid = meta.request_id
        if not rid:
            ctx = span.get_span_context()
            rid = format(ctx.trace_id, "032x") if ctx.is_valid else os.urandom(8).hex()
        request_id.set(rid)
        rpc_method.set(plan.method)
        await self._authenticate(plan, context, meta.token, meta.scheme_ok, span)
        await self._guard_deadline(plan, context)

    async def _authenticate(
        self, plan: _Plan, context: Any, token: str, scheme_ok: bool, span: trace.Span
    ) -> None:
        rule = plan.rule
        if not scheme_ok:
            await abort(context, errors.Unauthenticated("expected a Bearer token"))
        if not token:
            if not rule.anonymous:
                await abort(context, errors.Unauthenticated("missing bearer token"))
            current_principal.set(ANONYMOUS)
            return
        try:
            principal = await self._verifier.verify(token)
        except errors.Unauthenticated as err:
            if not rule.anonymous:
                await abort(context, err)
            # A stale token must not stop a client from logging in again.
            principal = ANONYMOUS
        if not rule.admits(principal):
            await abort(
                context,
                errors.PermissionDenied(f"{principal.kind.value} callers may not call {plan.name}"),
            )
        if refused := self._limiter.admit(principal):
            await abort(context, refused)
        current_principal.set(principal)
        if type(span) is ServerSpan:
            span.add_trusted(
                {semconv.CALLER_KIND: principal.kind.value, semconv.CALLER_ID: principal.subject}
            )
        elif span.is_recording():
            span.set_attributes(
                {semconv.CALLER_KIND: principal.kind.value, semconv.CALLER_ID: principal.subject}
            )

    async def _guard_deadline(self, plan: _Plan, context: Any) -> None:
        remaining = context.time_remaining()
        if remaining is None:
            # Streams live long; a unary call without a deadline gets a budget.
            call_deadline.set(None if plan.streaming else time.monotonic() + self._default)
        elif remaining <= 0:
            # Already gone (gRPC reports 0, never less): the caller has had
            # DEADLINE_EXCEEDED from its own side and nothing can be sent.
            _outcome.set(
                (grpc.StatusCode.DEADLINE_EXCEEDED, "deadline passed before the call started")
            )
            raise CallOver("deadline passed")
        elif remaining < self._minimum:
            await abort(context, errors.DeadlineExceeded("deadline too short to start"))
        else:
            call_deadline.set(time.monotonic() + remaining)

    async def _fail(self, plan: _Plan, context: Any, exc: Exception, span: trace.Span) -> NoReturn:
        mapped = map_exception(exc)
        if mapped is None:
            log.exception("unexpected error in %s", plan.method)
            span.record_exception(exc)
            mapped = errors.Internal()
        elif span.is_recording():
            span.set_attribute(semconv.ERROR_REASON, mapped.reason)
        await abort(context, mapped)


class PlatformInterceptor(grpc.aio.ServerInterceptor):
    """The stages as a grpc.aio server interceptor, for a server whose handlers
    were not registered through `registration.WrappingServer`."""

    def __init__(
        self,
        verifier: TokenVerifier,
        policies: Mapping[str, Policy],
        minimum_deadline_s: float = 0.002,
        default_budget_s: float = 30.0,
        limiter: RateLimiter | None = None,
        durations: DurationHistogram | None = None,
    ) -> None:
        self._stages = PlatformStages(
            verifier, policies, minimum_deadline_s, default_budget_s, limiter, durations
        )
        self._cache: dict[str, Handler | None] = {}

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Handler | None]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Handler | None:
        method = handler_call_details.method
        try:
            return self._cache[method]
        except KeyError:
            pass
        handler = await continuation(handler_call_details)
        wrapped = None if handler is None else self._stages.wrap(method, handler)
        self._cache[method] = wrapped
        return wrapped


# The server shutting down, crashed, or still starting up (recovery after a
# restart): retryable, as a connection error is, not a bug of the service.
_DB_DOWN = asyncpg.AdminShutdownError | asyncpg.CrashShutdownError | asyncpg.CannotConnectNowError


def map_exception(exc: BaseException) -> errors.DomainError | None:
    """The status an exception from service code becomes; None means INTERNAL."""
    if isinstance(exc, errors.DomainError):
        return exc
    if isinstance(exc, asyncpg.UniqueViolationError):
        return errors.AlreadyExists("already exists", reason="ALREADY_EXISTS")
    if isinstance(exc, asyncpg.SerializationError | asyncpg.DeadlockDetectedError):
        return errors.Aborted("concurrent update, retry", reason="CONFLICT")
    if isinstance(exc, asyncpg.PostgresConnectionError | ConnectionError | OSError | _DB_DOWN):
        return errors.Unavailable("database unavailable", reason="DATABASE_UNAVAILABLE")
    if isinstance(exc, asyncpg.InterfaceError) and "pool" in str(exc).lower():
        return errors.Unavailable("shutting down", reason="SHUTTING_DOWN")
    if isinstance(exc, grpc.aio.AioRpcError):
        if exc.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
            return errors.Unavailable(
                "a dependency is unavailable", reason="DEPENDENCY_UNAVAILABLE"
            )
        return None
    if isinstance(exc, TimeoutError):
        return errors.Unavailable("timed out waiting for a dependency", reason="TIMEOUT")
    return None
