"""The kopf wiring, kept thin: every watch event names an object to reconcile; the reconcile does the rest.

Only ``on.event`` handlers are used, never kopf's create/update/timer handlers: those keep state in
annotations and add finalizers, and a finalizer would block deleting a pack whenever the operator is
down. Triggers:

- ModelPack events -> reconcile the pack, then the LoadTests waiting for it;
- events on the pack's Deployments (deleted or edited by hand, or availability changing) -> the pack,
  except the garbage collection of a deleted pack's servers (one GET per server for nothing);
- LoadTest events, its Job's events and its workers' result ConfigMaps -> the LoadTest;
- a resync loop every ``MODELPACK_RECONCILE_RESYNC_SECONDS`` -> everything (drift, retries after errors).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
from typing import Any

import kopf

from modelpack.api.common import GROUP, VERSION
from modelpack_operator import labels as L
from modelpack_operator.runtime import Runtime

log = logging.getLogger(__name__)
_runtime: Runtime | None = None
_resync_task: asyncio.Task[None] | None = None
_stop_flag: threading.Event | None = None
_watchdog: threading.Timer | None = None


def install(runtime: Runtime, stop_flag: threading.Event | None = None) -> None:
    """Give the handlers their runtime, and the flag passed to ``kopf.run(stop_flag=...)`` that ``begin_stop``
    sets; ``modelpack operator`` calls this before starting kopf."""
    global _runtime, _stop_flag
    _runtime = runtime
    _stop_flag = stop_flag


def _rt() -> Runtime:
    if _runtime is None:
        raise kopf.PermanentError("the operator runtime is not installed: start with `modelpack operator`")
    return _runtime


@kopf.on.startup()
async def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
    global _resync_task
    runtime = _rt()
    settings.peering.standalone = True
    settings.posting.level = logging.WARNING
    settings.execution.max_workers = runtime.settings.reconcile.workers
    settings.watching.server_timeout = 300
    # Namespace-scoped installs get no cluster-wide rights: skip kopf's scan of CRDs and namespaces (the
    # resources are fixed, and the chart installs the CRDs before the operator starts).
    settings.scanning.disabled = bool(runtime.namespaces)
    _resync_task = asyncio.create_task(_resync_forever(runtime))


STOP_DEADLINE_SECONDS = 10.0
"""After SIGTERM the process ends within this long whatever a reconcile thread is doing (the pod's grace period
is 30 s): reconciles are level-triggered and idempotent, so one cut short is redone by the next operator."""


def begin_stop(reason: str = "stopping") -> None:
    """Start shutting down: queued reconciles do not start, kopf is told to stop, and whatever still runs after
    ``STOP_DEADLINE_SECONDS`` is abandoned. Called from the SIGTERM handler, because kopf's own cleanup runs
    only after its watchers end, which waits on reconcile threads. Safe to call more than once."""
    global _watchdog
    if _watchdog is not None:
        return
    log.info("%s: stopping within %.0fs", reason, STOP_DEADLINE_SECONDS)
    if _runtime is not None:
        _runtime.stop()
    _watchdog = threading.Timer(STOP_DEADLINE_SECONDS, _exit_now)
    _watchdog.daemon = True
    _watchdog.start()
    if _stop_flag is not None:
        _stop_flag.set()


@kopf.on.cleanup()
async def stop(**_: Any) -> None:
    begin_stop()
    if _resync_task is not None:
        _resync_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await _resync_task


def _exit_now() -> None:
    log.warning("still stopping after %.0fs: exiting without waiting for reconcile threads", STOP_DEADLINE_SECONDS)
    logging.shutdown()
    os._exit(0)


async def _resync_forever(runtime: Runtime) -> None:
    loop = asyncio.get_running_loop()
    while True:
        await asyncio.sleep(runtime.settings.reconcile.resync_seconds)
        try:
            await loop.run_in_executor(None, runtime.resync)
        except Exception:  # a resync must never end the loop
            log.exception("resync failed")


def _gone(event: kopf.RawEvent) -> bool:
    return event.get("type") == "DELETED"


@kopf.on.event(GROUP, VERSION, "modelpacks")
def modelpack_event(event: kopf.RawEvent, namespace: str | None, name: str, uid: str | None, **_: Any) -> None:
    if namespace is None:
        return
    runtime = _rt()
    if _gone(event):
        if uid:
            runtime.pack_deleted(uid)
        return
    runtime.pack(namespace, name)
    runtime.loadtests_of_pack(namespace, name)


def _pack_owner(meta: kopf.Meta) -> str | None:
    owners = meta.get("ownerReferences") or []
    return next((o.get("uid") for o in owners if o.get("kind") == "ModelPack"), None)


@kopf.on.event("apps", "v1", "deployments", labels={L.MANAGED_BY: L.MANAGED_BY_VALUE, L.PACK: kopf.PRESENT})
def server_event(labels: kopf.Labels, meta: kopf.Meta, namespace: str | None, **_: Any) -> None:
    if namespace is not None:
        _rt().server_changed(namespace, labels[L.PACK], _pack_owner(meta))


@kopf.on.event("", "v1", "pods", labels={L.COMPONENT: L.SERVER_COMPONENT, L.PACK: kopf.PRESENT})
def server_pod_event(event: kopf.RawEvent, labels: kopf.Labels, namespace: str | None, **_: Any) -> None:
    if not _gone(event) and namespace is not None:
        _rt().server_pod(namespace, labels[L.PACK], dict(event["object"]))


@kopf.on.event(GROUP, VERSION, "loadtests")
def loadtest_event(event: kopf.RawEvent, namespace: str | None, name: str, **_: Any) -> None:
    if not _gone(event) and namespace is not None:
        _rt().loadtest(namespace, name)


@kopf.on.event("batch", "v1", "jobs", labels={L.MANAGED_BY: L.MANAGED_BY_VALUE, L.LOADTEST: kopf.PRESENT})
def job_event(labels: kopf.Labels, namespace: str | None, **_: Any) -> None:
    if namespace is not None:
        _rt().loadtest(namespace, labels[L.LOADTEST])


@kopf.on.event("", "v1", "configmaps", labels={L.COMPONENT: L.RESULT_COMPONENT, L.LOADTEST: kopf.PRESENT})
def result_event(event: kopf.RawEvent, labels: kopf.Labels, namespace: str | None, **_: Any) -> None:
    if not _gone(event) and namespace is not None:
        _rt().loadtest(namespace, labels[L.LOADTEST])
