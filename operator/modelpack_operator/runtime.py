"""The operator's running state: API client, settings, and at most one reconcile per object at a time.

Every trigger (a watch event on the object, on a Deployment/Job/ConfigMap it owns, or the periodic
resync) funnels into :meth:`Runtime.pack` or :meth:`Runtime.loadtest`, which re-read the object and
reconcile it; triggers arriving during a run fold into one re-run (``coalesce``). Failures are logged and
left to the next trigger or resync: no retry loop can spin, and a broken object never stops the others.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

from modelpack.api.common import API_VERSION
from modelpack_operator import events, metrics
from modelpack_operator.coalesce import Coalescer
from modelpack_operator.kube import Kube, KubeError
from modelpack_operator.reconcile.loadtest import TERMINAL_PHASES, reconcile_loadtest
from modelpack_operator.reconcile.modelpack import reconcile_pack
from modelpack_operator.reconcile.pack_status import oom_kills
from modelpack_operator.settings import OperatorSettings

log = logging.getLogger(__name__)
DELETED_PACKS_REMEMBERED = 4096
"""UIDs of deleted packs kept to ignore their servers' garbage collection (bounded: oldest forgotten first)."""


class Runtime:
    def __init__(self, kube: Kube, settings: OperatorSettings, namespaces: Sequence[str] = ()) -> None:
        self.kube = kube
        self.settings = settings
        self.namespaces = list(namespaces)
        """Watched namespaces; empty means cluster-wide."""
        self._runs = Coalescer()
        self._deleted_packs: OrderedDict[str, None] = OrderedDict()
        self._reported: OrderedDict[str, None] = OrderedDict()
        """Names of the OOM-kill Events already posted (bounded like the deleted packs)."""
        self.stopping = threading.Event()
        """Set on shutdown: no new reconcile starts, so the process can end within its grace period."""

    def stop(self) -> None:
        self.stopping.set()

    def pack(self, namespace: str, name: str) -> None:
        self._runs.run(("ModelPack", namespace, name), lambda: self._pack(namespace, name))

    def pack_deleted(self, uid: str) -> None:
        """Remember a deleted pack, so the deletion events of the servers it owned trigger nothing."""
        self._deleted_packs[uid] = None
        while len(self._deleted_packs) > DELETED_PACKS_REMEMBERED:
            self._deleted_packs.popitem(last=False)

    def server_changed(self, namespace: str, pack: str, owner_uid: str | None) -> None:
        """A server Deployment changed: its pack re-checks it, unless that pack is gone and this is its GC.

        Without the check, deleting a pack of 1,875 servers cost one GET of the (gone) pack per server.
        """
        if owner_uid is not None and owner_uid in self._deleted_packs:
            return
        self.pack(namespace, pack)

    def server_pod(self, namespace: str, pack: str, pod: dict[str, Any]) -> None:
        """A server pod changed: a container's OOM kill becomes a Warning Event on its pack, once per kill."""
        kills = [(name, message) for name, message in oom_kills(pod) if name not in self._reported]
        if not kills:
            return
        try:
            body = self.kube.get(API_VERSION, "ModelPack", namespace, pack)
        except KubeError as err:
            log.warning("modelpack %s/%s: cannot read it to report an OOM kill: %s", namespace, pack, err)
            return
        for name, message in kills:
            if body is not None:
                events.record(self.kube, body, "Warning", "ServerOOMKilled", message, name=name)
            self._reported[name] = None
        while len(self._reported) > DELETED_PACKS_REMEMBERED:
            self._reported.popitem(last=False)

    def loadtest(self, namespace: str, name: str) -> None:
        self._runs.run(("LoadTest", namespace, name), lambda: self._loadtest(namespace, name))

    def _pack(self, namespace: str, name: str) -> None:
        if self.stopping.is_set():
            return
        try:
            body = self.kube.get(API_VERSION, "ModelPack", namespace, name)
            if body is not None and not body["metadata"].get("deletionTimestamp"):
                with metrics.timed("ModelPack"):
                    reconcile_pack(self.kube, body, self.settings)
        except KubeError as err:
            log.warning("modelpack %s/%s: reconcile failed, will retry: %s", namespace, name, err)

    def _loadtest(self, namespace: str, name: str) -> None:
        if self.stopping.is_set():
            return
        try:
            body = self.kube.get(API_VERSION, "LoadTest", namespace, name)
            if body is not None and not body["metadata"].get("deletionTimestamp"):
                with metrics.timed("LoadTest"):
                    reconcile_loadtest(self.kube, body, self.settings)
        except KubeError as err:
            log.warning("loadtest %s/%s: reconcile failed, will retry: %s", namespace, name, err)

    def loadtests_of_pack(self, namespace: str, pack: str) -> None:
        """LoadTests waiting for (or running against) ``pack`` re-check it when it changes."""
        try:
            items = self.kube.list(API_VERSION, "LoadTest", namespace)
        except KubeError as err:
            log.warning("listing loadtests in %s failed: %s", namespace, err)
            return
        for item in items:
            target = ((item.get("spec") or {}).get("target") or {}).get("modelPack")
            phase = (item.get("status") or {}).get("phase")
            if target == pack and phase not in TERMINAL_PHASES:
                self.loadtest(namespace, item["metadata"]["name"])

    def resync(self) -> None:
        """Reconcile every pack and unfinished LoadTest once; what the periodic loop runs."""
        scopes: list[str | None] = list(self.namespaces) or [None]
        for namespace in scopes:
            for kind, handler in (("ModelPack", self.pack), ("LoadTest", self.loadtest)):
                try:
                    items = self.kube.list(API_VERSION, kind, namespace)
                except KubeError as err:
                    log.warning("resync: listing %s failed: %s", kind, err)
                    continue
                for item in items:
                    if self.stopping.is_set():
                        return
                    if kind == "LoadTest" and (item.get("status") or {}).get("phase") in TERMINAL_PHASES:
                        continue
                    handler(item["metadata"]["namespace"], item["metadata"]["name"])
