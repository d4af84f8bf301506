"""A watched cache of the Secrets Kustos projects, one label-selected watch per namespace.

Why (docs/security.md, "Drift detection by watch"): reading every projected Secret by name
on each drift pass costs n GETs; a watch costs one connection per namespace. RBAC cannot
scope a watch by label, so the watch runs only where a namespace grants it (the ClusterRole
`kustos-projection-watch`, bound by a RoleBinding there): the label selector
`app.kubernetes.io/managed-by=kustos` keeps the traffic and memory small, the RoleBinding is
the boundary. There is never a cluster-wide list or watch of Secrets.

- `SecretCache` holds the rules, without I/O: a namespace is *synced* once a complete
  (paged) LIST landed; an event or a write of our own replaces an entry only when its
  `resourceVersion` is newer than the cached one, so the echo of our own write, or an
  event older than it, changes nothing and reports nothing. A relist after a watch gap
  reports every entry that differs from the cache.
- `SecretWatch` runs a thread per namespace: LIST (`limit`/`continue`) then WATCH from the
  list's resourceVersion (bookmarks on), relisting on `410 Gone`, with jittered backoff on
  every error. A `403` marks the namespace *unwatched*: reads there fall back to a GET by
  name (`WatchedSecretGateway`), and the watch is tried again after a jittered
  `forbidden_retry` (a RoleBinding may be added later).
- `WatchedSecretGateway` is the `SecretGateway` the projection uses: `get` answers from the
  cache in a synced namespace (no request), writes go through and land in the cache.

The cache holds the projected Secrets as the apiserver sends them, minus `managedFields`:
data the operator wrote itself and may read anyway. Nothing here logs an object's data.
"""

from __future__ import annotations

import contextlib
import json
import logging
import random
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from kubernetes import client
from kubernetes.client.rest import ApiException

from kustos.kube.secrets import SecretGateway
from kustos.models.packed import Packed

__all__ = ["SELECTOR", "ChangeListener", "SecretCache", "SecretWatch", "WatchedSecretGateway"]

log = logging.getLogger("kustos.kube.secret_watch")
Obj = dict[str, Any]
SELECTOR = "app.kubernetes.io/managed-by=kustos"
#: Told about a projected Secret someone else changed or deleted: (namespace, the object's
#: newest body, or its last body when deleted; deleted).
ChangeListener = Callable[[str, Obj, bool], None]


def _rv(obj: Packed) -> int | None:
    try:
        return int(obj.resource_version or "")
    except ValueError:
        return None  # opaque to clients by contract: then every event counts as newer


def _newer(candidate: Packed, cached: Packed | None) -> bool:
    if cached is None:
        return True
    new, old = _rv(candidate), _rv(cached)
    return new is None or old is None or new > old


def _trim(obj: Obj) -> Packed:
    obj = dict(obj)
    meta = dict(obj.get("metadata") or {})
    meta.pop("managedFields", None)
    obj["metadata"] = meta
    return Packed.of(obj)


class SecretCache:
    """The rules of the cache (thread-safe, no I/O); see the module docstring."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._objects: dict[str, dict[str, Packed]] = {}  # namespace -> name -> body
        self._synced: set[str] = set()
        #: The newest resourceVersion of a deletion per (namespace, name), so an older
        #: event cannot bring back what was deleted (kept until the name is written again).
        self._tombstones: dict[tuple[str, str], Packed] = {}

    def synced(self, namespace: str) -> bool:
        with self._lock:
            return namespace in self._synced

    def get(self, namespace: str, name: str) -> tuple[bool, Obj | None]:
        """(known, body): known is False when the namespace is not synced (ask the API)."""
        with self._lock:
            if namespace not in self._synced:
                return False, None
            obj = self._objects.get(namespace, {}).get(name)
        return True, obj.unpack() if obj is not None else None  # a fresh dict

    def replace_all(self, namespace: str, items: list[Obj]) -> list[tuple[Obj, bool]]:
        """A complete listing landed: the namespace is synced. Returns what differs from
        the previous cache, when there was one (an initial listing reports nothing)."""
        fresh = {o["metadata"]["name"]: _trim(o) for o in items}
        with self._lock:
            was_synced = namespace in self._synced
            old = self._objects.get(namespace, {})
            for name, cached in old.items():  # our own write after the listing's snapshot
                if name in fresh and _rv(cached) is not None and not _newer(fresh[name], cached):
                    fresh[name] = cached
            self._objects[namespace] = fresh
            self._synced.add(namespace)
            for key in [k for k in self._tombstones if k[0] == namespace]:
                del self._tombstones[key]
        if not was_synced:
            return []
        changed = [(o.unpack(), False) for n, o in fresh.items() if _differs(old.get(n), o)]
        changed += [(o.unpack(), True) for n, o in old.items() if n not in fresh]
        return changed

    def unsync(self, namespace: str) -> None:
        """The watch cannot run there (forbidden, or stopped): reads go to the API."""
        with self._lock:
            self._synced.discard(namespace)
            self._objects.pop(namespace, None)

    def apply(self, namespace: str, event_type: str, obj: Obj) -> bool:
        """One watch event; True when it is news (someone else's change)."""
        name = obj["metadata"]["name"]
        packed = _trim(obj)
        with self._lock:
            entries = self._objects.setdefault(namespace, {})
            cached = entries.get(name) or self._tombstones.get((namespace, name))
            if not _newer(packed, cached):
                return False  # the echo of our own write, or older than it
            if event_type == "DELETED":
                entries.pop(name, None)
                self._tombstones[(namespace, name)] = packed
            else:
                entries[name] = packed
                self._tombstones.pop((namespace, name), None)
            return True

    def remember(self, namespace: str, obj: Obj) -> None:
        """Our own write, as the apiserver answered it (its watch echo is then no news)."""
        self.apply(namespace, "MODIFIED", obj)

    def forget(self, namespace: str, name: str) -> None:
        """Our own delete: the entry goes; its DELETED event then finds nothing newer to do
        than a tombstone-less removal, which it reports (harmless: the owner is gone or
        re-projects to what it already has)."""
        with self._lock:
            self._objects.get(namespace, {}).pop(name, None)

    def size(self) -> int:
        with self._lock:
            return sum(len(v) for v in self._objects.values())


def _differs(old: Packed | None, new: Packed) -> bool:
    if old is None:
        return True
    return _rv(old) != _rv(new) or _rv(new) is None


class SecretWatch:
    """One watch thread per namespace asked for (`watch`); see the module docstring."""

    def __init__(
        self,
        api: client.ApiClient,
        *,
        page_size: int = 500,
        timeout_seconds: int = 300,
        forbidden_retry: float = 600.0,
        sync_wait: float = 10.0,
    ) -> None:
        self._core = client.CoreV1Api(api)
        self.cache = SecretCache()
        self._page_size = page_size
        self._timeout = timeout_seconds
        self._forbidden_retry = forbidden_retry
        self._sync_wait = sync_wait
        self._listeners: list[ChangeListener] = []
        self._lock = threading.Lock()
        self._threads: dict[str, threading.Thread] = {}
        self._forbidden: set[str] = set()
        self._settled: dict[str, threading.Event] = {}  # synced, or found forbidden, once
        self._stop = threading.Event()
        self._started = False
        self._wanted: set[str] = set()
        self._streams: dict[str, Any] = {}  # namespace -> the open watch response

    def listen(self, listener: ChangeListener) -> None:
        self._listeners.append(listener)

    def start(self) -> None:
        with self._lock:
            self._started = True
            wanted = list(self._wanted)
        for namespace in wanted:
            self.watch(namespace)

    def stop(self) -> None:
        self._stop.set()
        with self._lock:
            threads = list(self._threads.values())
            streams = list(self._streams.values())
        for stream in streams:  # unblock the threads' reads, without waiting on them:
            # closing a response another thread is reading can block until that read ends
            # (up to the watch's timeout), which held the shutdown and the Lease's release.
            threading.Thread(
                target=_close_quietly, args=(stream,), name="kustos-secrets-close", daemon=True
            ).start()
        # One short budget for all of them, not one per namespace: a thread whose read the
        # close did not unblock is a daemon that delivers nothing more (the runtime stops
        # next), and the shutdown must reach the Lease's release quickly (a fast handover).
        deadline = time.monotonic() + 1.0
        for thread in threads:
            thread.join(timeout=max(0.0, deadline - time.monotonic()))

    def watch(self, namespace: str) -> None:
        """Watch the namespace's projected Secrets from now on (idempotent)."""
        with self._lock:
            self._wanted.add(namespace)
            if not self._started or namespace in self._threads or self._stop.is_set():
                return
            self._settled[namespace] = threading.Event()
            thread = threading.Thread(
                target=self._run, args=(namespace,), name=f"kustos-secrets-{namespace}", daemon=True
            )
            self._threads[namespace] = thread
        thread.start()

    def forbidden(self) -> list[str]:
        """Namespaces with ManagedSecrets where the watch is refused (no RoleBinding)."""
        with self._lock:
            return sorted(self._forbidden)

    def refused(self, namespace: str) -> bool:
        """The watch is refused in `namespace` (403: no RoleBinding there)."""
        with self._lock:
            return namespace in self._forbidden

    def read(self, namespace: str, name: str) -> tuple[bool, Obj | None]:
        """The cached body (known=True), or known=False: ask the API by name. While the
        namespace's first listing is under way (a restart), waits for it a little rather
        than have every object read its Secret by name."""
        known, obj = self.cache.get(namespace, name)
        if known:
            return known, obj
        with self._lock:
            settled = self._settled.get(namespace)
        if settled is not None and not settled.is_set() and settled.wait(self._sync_wait):
            return self.cache.get(namespace, name)
        return False, None

    # -- the loop ------------------------------------------------------------------------
    def _run(self, namespace: str) -> None:
        failures, version = 0, None
        while not self._stop.is_set():
            try:
                if version is None:
                    version = self._list(namespace)
                    with self._lock:
                        self._forbidden.discard(namespace)
                    self._settled[namespace].set()
                # From the last version seen (bookmarks keep it fresh): a server timeout
                # resumes the watch; only a gap (410 Gone) or an error lists again.
                version = self._watch(namespace, version)
                failures = 0
                continue
            except ApiException as exc:
                version = None
                if exc.status == 403:
                    with self._lock:
                        if namespace not in self._forbidden:
                            log.warning(
                                "namespace %s: no RoleBinding of kustos-projection-watch; "
                                "projected Secrets there are read by name",
                                namespace,
                            )
                        self._forbidden.add(namespace)
                    self.cache.unsync(namespace)
                    self._settled[namespace].set()
                    self._stop.wait(_jitter(self._forbidden_retry))
                    continue
                failures += 1
                log.warning("watch of Secrets in %s: HTTP %s", namespace, exc.status)
            except Exception as exc:  # a dropped connection, a bad line: back off, relist
                version = None
                failures += 1
                log.warning("watch of Secrets in %s: %s", namespace, type(exc).__name__)
            self._stop.wait(_jitter(min(30.0, 0.5 * 2 ** min(failures, 6))))

    def _list(self, namespace: str) -> str:
        items: list[Obj] = []
        token: str | None = None
        while True:
            resp = self._core.list_namespaced_secret(
                namespace,
                label_selector=SELECTOR,
                limit=self._page_size,
                _continue=token,
                _preload_content=False,
            )
            page: Obj = json.loads(resp.data)
            items.extend(page.get("items") or [])
            meta = page.get("metadata") or {}
            token = meta.get("continue") or None
            if token is None:
                break
        for obj, deleted in self.cache.replace_all(namespace, items):
            self._tell(namespace, obj, deleted)
        return str(meta.get("resourceVersion", ""))

    def _watch(self, namespace: str, version: str) -> str | None:
        """Events from `version` on; returns the version to resume from, None: relist."""
        resp = self._core.list_namespaced_secret(
            namespace,
            label_selector=SELECTOR,
            watch=True,
            resource_version=version,
            allow_watch_bookmarks=True,
            timeout_seconds=int(_jitter(self._timeout)),
            _preload_content=False,
            _request_timeout=(10, self._timeout + 60),
        )
        with self._lock:
            self._streams[namespace] = resp
        try:
            for line in _lines(resp):
                if self._stop.is_set():
                    return version
                event = json.loads(line)
                kind, obj = event.get("type"), event.get("object") or {}
                if kind == "ERROR":
                    return None  # e.g. 410 Gone: the version is too old, relist
                version = str(obj.get("metadata", {}).get("resourceVersion") or version)
                if kind not in ("ADDED", "MODIFIED", "DELETED"):
                    continue  # BOOKMARK: only the version moves
                if self.cache.apply(namespace, kind, obj):
                    self._tell(namespace, obj, kind == "DELETED")
        finally:
            with self._lock:
                self._streams.pop(namespace, None)
            resp.release_conn()
        return version

    def _tell(self, namespace: str, obj: Obj, deleted: bool) -> None:
        for listener in self._listeners:
            try:
                listener(namespace, obj, deleted)
            except Exception:
                log.exception("projected Secret listener failed")


def _lines(resp: Any) -> Iterator[str]:
    buffer = b""
    for chunk in resp.stream(amt=65536, decode_content=False):
        buffer += chunk
        while b"\n" in buffer:
            line, buffer = buffer.split(b"\n", 1)
            if line.strip():
                yield line.decode("utf-8")


def _jitter(seconds: float, spread: float = 0.2) -> float:
    return max(0.0, seconds * (1.0 + random.uniform(-spread, spread)))  # noqa: S311


class WatchedSecretGateway(SecretGateway):
    """`SecretGateway` whose reads come from the watch where it runs (see module docstring)."""

    def __init__(self, api: client.ApiClient, watch: SecretWatch) -> None:
        super().__init__(api)
        self._watch = watch

    def get(self, namespace: str, name: str) -> Obj | None:
        known, obj = self._watch.read(namespace, name)
        if known:
            return obj
        return super().get(namespace, name)

    def create(self, namespace: str, body: Obj) -> Obj:
        created = super().create(namespace, body)
        self._watch.cache.remember(namespace, created)
        return created

    def replace(self, namespace: str, name: str, body: Obj) -> Obj:
        replaced = super().replace(namespace, name, body)
        self._watch.cache.remember(namespace, replaced)
        return replaced

    def delete(self, namespace: str, name: str, uid: str | None = None) -> bool:
        deleted = super().delete(namespace, name, uid)
        self._watch.cache.forget(namespace, name)
        return deleted


def _close_quietly(stream: Any) -> None:
    with contextlib.suppress(Exception):  # a dead connection: nothing to close
        stream.close()
