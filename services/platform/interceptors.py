"""The server interceptors every service installs: OpenTelemetry's (skipping
health and reflection), then the platform's own (request context, auth,
deadline guard, error mapping).
"""

from __future__ import annotations

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
from opentelemetry import metrics, trace

from services.platform import errors, semconv
from services.platform.callctx import call_deadline, request_id, rpc_method
from services.platform.handlers import (
    Handler,
    StreamBehavior,
    UnaryBehavior,
    method_parts,
    wrap_handler,
)
from services.platform.principal import ANONYMOUS, Allow, Policy, current_principal
from services.platform.ratelimit import RateLimiter
from services.platform.tokens import TokenVerifier

log = logging.getLogger("venue.rpc")

_status_code: contextvars.ContextVar[grpc.StatusCode] = contextvars.ContextVar(
    "status_code", default=grpc.StatusCode.OK
)

# Services that answer without credentials: load balancers, grpcurl and
# Kubernetes probes expect health and reflection to be open.
PUBLIC_SERVICES = frozenset(
    {
        "grpc.health.v1.Health",
        "grpc.reflection.v1alpha.ServerReflection",
        "grpc.reflection.v1.ServerReflection",
    }
)


async def abort(context: grpc.aio.ServicerContext[Any, Any], err: errors.DomainError) -> NoReturn:
    _status_code.set(err.code)
    status = rpc_status.to_status(err.to_status())
    await context.abort(status.code, status.details, status.trailing_metadata)
    raise AssertionError("abort returned")  # pragma: no cover - abort always raises


@dataclass
class _Plan:
    """What the interceptor knows of one method before any call arrives."""

    method: str
    name: str
    rule: Allow
    streaming: bool
    metric_attrs: dict[grpc.StatusCode, dict[str, str | int]]


class PlatformInterceptor(grpc.aio.ServerInterceptor):
    """Every call of every service goes through these stages, in this order:

    1. request context: the request id (the caller's x-request-id, else the trace
       id) and the method go into context variables that logs carry;
    2. auth: the bearer token becomes the principal, and the method's policy must
       admit it (a method with no policy admits nobody);
    3. deadline guard: a call whose deadline is as good as gone is refused, and the
       deadline is kept so outgoing calls carry what is left of it;
    4. error mapping: domain errors become their status with details; anything
       else becomes INTERNAL, its detail only in logs and spans;
    and the RPC duration is recorded with its status code.

    The stages share one wrapper, built once per method, because each extra layer
    of wrapping costs every call on the hot path (see bench/foundation.py).
    Health and reflection pass through untouched: probes need no credentials.
    """

    def __init__(
        self,
        verifier: TokenVerifier,
        policies: Mapping[str, Policy],
        minimum_deadline_s: float = 0.002,
        default_budget_s: float = 30.0,
        limiter: RateLimiter | None = None,
    ) -> None:
        self._verifier = verifier
        self._limiter = limiter or RateLimiter.from_env()
        self._policies = policies
        self._minimum = minimum_deadline_s
        self._default = default_budget_s
        self._cache: dict[str, Handler | None] = {}
        self._duration = semconv.histogram(
            metrics.get_meter("venue.rpc"), semconv.RPC_SERVER_DURATION
        )

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
        wrapped = None if handler is None else self._wrap(method, handler)
        self._cache[method] = wrapped
        return wrapped

    def _wrap(self, method: str, handler: Handler) -> Handler:
        service, name = method_parts(method)
        if service in PUBLIC_SERVICES:
            return handler
        base = {"rpc.system": "grpc", "rpc.service": service, "rpc.method": name}
        plan = _Plan(
            method=method,
            name=name,
            rule=self._policies.get(service, {}).get(name, Allow()),
            streaming=handler.unary_stream is not None or handler.stream_stream is not None,
            metric_attrs={
                code: {**base, "rpc.grpc.status_code": code.value[0]} for code in grpc.StatusCode
            },
        )

        def unary(behavior: UnaryBehavior) -> UnaryBehavior:
            async def call(request: Any, context: Any) -> Any:
                started = time.perf_counter()
                try:
                    await self._enter(plan, context)
                    return await behavior(request, context)
                except grpc.aio.AbortError:
                    raise
                except Exception as exc:
                    await self._fail(plan, context, exc)
                finally:
                    self._record(plan, started)

            return call

        def stream(behavior: StreamBehavior) -> StreamBehavior:
            async def call(request: Any, context: Any) -> AsyncIterator[Any]:
                started = time.perf_counter()
                try:
                    await self._enter(plan, context)
                    async for response in behavior(request, context):
                        yield response
                except grpc.aio.AbortError:
                    raise
                except Exception as exc:
                    await self._fail(plan, context, exc)
                finally:
                    self._record(plan, started)

            return call

        return wrap_handler(handler, unary, stream)

    async def _enter(self, plan: _Plan, context: Any) -> None:
        token = rid = ""
        scheme_ok = True
        for key, value in context.invocation_metadata() or ():
            if key == "authorization":
                scheme, _, token = str(value).partition(" ")
                scheme_ok = scheme.lower() == "bearer"
            elif key == "x-request-id":
                rid = str(value)[:64]
        span = trace.get_current_span()
        if not rid:
            ctx = span.get_span_context()
            rid = format(ctx.trace_id, "032x") if ctx.is_valid else os.urandom(8).hex()
        request_id.set(rid)
        rpc_method.set(plan.method)
        _status_code.set(grpc.StatusCode.OK)

        await self._authenticate(plan, context, token, scheme_ok, span)
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
        if span.is_recording():
            span.set_attribute(semconv.CALLER_KIND, principal.kind.value)
            span.set_attribute(semconv.CALLER_ID, principal.subject)

    async def _guard_deadline(self, plan: _Plan, context: Any) -> None:
        remaining = context.time_remaining()
        if remaining is None:
            # Streams live long; a unary call without a deadline gets a budget.
            call_deadline.set(None if plan.streaming else time.monotonic() + self._default)
        elif remaining < self._minimum:
            await abort(context, errors.DeadlineExceeded("deadline too short to start"))
        else:
            call_deadline.set(time.monotonic() + remaining)

    async def _fail(self, plan: _Plan, context: Any, exc: Exception) -> NoReturn:
        mapped = map_exception(exc)
        span = trace.get_current_span()
        if mapped is None:
            log.exception("unexpected error in %s", plan.method)
            span.record_exception(exc)
            mapped = errors.Internal()
        elif span.is_recording():
            span.set_attribute(semconv.ERROR_REASON, mapped.reason)
        await abort(context, mapped)

    def _record(self, plan: _Plan, started: float) -> None:
        code = _status_code.get()
        self._duration.record((time.perf_counter() - started) * 1000.0, plan.metric_attrs[code])


def map_exception(exc: BaseException) -> errors.DomainError | None:
    """The status an exception from service code becomes; None means INTERNAL."""
    if isinstance(exc, errors.DomainError):
        return exc
    if isinstance(exc, asyncpg.UniqueViolationError):
        return errors.AlreadyExists("already exists", reason="ALREADY_EXISTS")
    if isinstance(exc, asyncpg.SerializationError | asyncpg.DeadlockDetectedError):
        return errors.Aborted("concurrent update, retry", reason="CONFLICT")
    if isinstance(exc, asyncpg.PostgresConnectionError | ConnectionError | OSError):
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
