"""Identity policies from the cluster: SecretAccessPolicy and ClusterSecretAccessPolicy.

Owns which policies apply to a caller (namespace ~ AWS account):

* A ClusterSecretAccessPolicy applies to the ServiceAccounts, users and groups it names,
  whatever the secret's namespace.
* A SecretAccessPolicy in namespace N is an identity policy *of N*. For a ServiceAccount
  caller, the policies of its own namespace that name it (or one of its groups) apply; as
  in AWS, an identity policy may reach secrets of another namespace, but there the secret's
  resource policy must agree too. ServiceAccount subjects must belong to N (granting another
  namespace's ServiceAccount is what a resource policy is for). For users and groups, which
  have no namespace, the SecretAccessPolicies of the *secret's* namespace apply, like a
  RoleBinding.
* Nobody is allowed by default: not cluster-admins (system:masters), not Kustos's operator.

Policies are listed from the API server at most every `ttl` seconds and compiled once per
resourceVersion. A policy that does not compile is skipped, alone: compiling never raises
(whatever the object holds, the outcome is a BoundPolicy with `.error`), so one bad policy
cannot break authorization for anyone else; the operator reports it on the policy's own
status (Valid=False) and in an Event. Compiling is kept apart from evaluating, so compiled
policies can be cached.

Decisions are cached too (`DecisionCache`), per *generation* of the index: a number that
moves whenever a re-list finds any policy added, removed or changed (uid and
resourceVersion), so no decision outlives the policy set it was made under. The bound for
an identity-policy change is therefore the index's: `ttl` (3 s) plus one list (renewed in
the background from two thirds of `ttl`, so requests do not wait for the list). A resource
policy is part of the cached decision's key (its text, from the secret's record, which the
store never serves stale), so a changed resource policy takes effect at once.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Hashable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from kustos.errors import MalformedPolicyError
from kustos.models.identity import Principal
from kustos.models.records import SecretRecord
from kustos.policy import Decision, Policy, PolicyKind, parse_policy
from kustos.policy.model import CLOCK_KEYS

__all__ = ["BoundPolicy", "DecisionCache", "PolicyIndex", "Subject", "compile_policy_object"]

log = logging.getLogger(__name__)
CLUSTER_KIND = "ClusterSecretAccessPolicy"
NAMESPACED_KIND = "SecretAccessPolicy"
Obj = dict[str, Any]
Source = Callable[[], tuple[list[Obj], list[Obj]]]


@dataclass(frozen=True)
class Subject:
    kind: str  # ServiceAccount | User | Group
    name: str
    namespace: str = ""

    @property
    def key(self) -> tuple[str, ...]:
        if self.kind == "ServiceAccount":
            return ("sa", self.namespace, self.name)
        return (self.kind.lower(), self.name)


@dataclass(frozen=True)
class BoundPolicy:
    kind: str  # SecretAccessPolicy | ClusterSecretAccessPolicy
    namespace: str  # "" for cluster policies
    name: str
    subjects: tuple[Subject, ...]
    policy: Policy | None
    error: str | None = None

    @property
    def label(self) -> str:
        return (
            f"{self.kind} {self.namespace}/{self.name}"
            if self.namespace
            else (f"{self.kind} {self.name}")
        )


def _subjects(raw: object, namespace: str) -> tuple[Subject, ...]:
    if not isinstance(raw, list) or not raw:
        raise MalformedPolicyError("spec.subjects must be a non-empty list")
    found: list[Subject] = []
    for i, item in enumerate(raw):
        if not isinstance(item, dict):
            raise MalformedPolicyError(f"spec.subjects[{i}] must be an object")
        kind, name = item.get("kind"), item.get("name")
        if kind not in ("ServiceAccount", "User", "Group") or not isinstance(name, str) or not name:
            raise MalformedPolicyError(
                f"spec.subjects[{i}] needs kind ServiceAccount, User or Group and a name"
            )
        sa_ns = ""
        if kind == "ServiceAccount":
            sa_ns = str(item.get("namespace") or namespace)
            if not sa_ns:
                raise MalformedPolicyError(
                    f"spec.subjects[{i}]: a ServiceAccount subject needs a namespace"
                )
            if namespace and sa_ns != namespace:
                raise MalformedPolicyError(
                    f"spec.subjects[{i}]: ServiceAccount {sa_ns}/{name} is in another namespace; "
                    f"a SecretAccessPolicy grants only its own namespace's ServiceAccounts "
                    f"(use the secret's resource policy to grant across namespaces)"
                )
        found.append(Subject(str(kind), name, sa_ns))
    return tuple(found)


def _mapping(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def compile_policy_object(obj: Obj) -> BoundPolicy:
    """Validate and parse one policy CR; never raises (errors land in `.error`)."""
    meta = _mapping(obj.get("metadata"))
    namespace = str(meta.get("namespace") or "")
    kind = NAMESPACED_KIND if namespace else CLUSTER_KIND
    name = str(meta.get("name") or "")
    label = f"{kind} {namespace}/{name}" if namespace else f"{kind} {name}"
    spec = _mapping(obj.get("spec"))
    try:
        subjects = _subjects(spec.get("subjects"), namespace)
        document = spec.get("policy")
        if not isinstance(document, dict):
            raise MalformedPolicyError("spec.policy must be a policy document object")
        policy = parse_policy(document, kind=PolicyKind.IDENTITY, name=label)
    except MalformedPolicyError as exc:
        return BoundPolicy(kind, namespace, name, (), None, exc.message)
    except Exception:  # a bug in the parser must not reach the other policies
        log.exception("compiling %s failed unexpectedly; the policy is not in force", label)
        return BoundPolicy(
            kind,
            namespace,
            name,
            (),
            None,
            "the policy could not be compiled (see the operator's log)",
        )
    return BoundPolicy(kind, namespace, name, subjects, policy)


def _principal_keys(principal: Principal) -> set[tuple[str, ...]]:
    keys: set[tuple[str, ...]] = {("user", principal.username)}
    keys.update(("group", g) for g in principal.groups)
    if principal.kind == "ServiceAccount":
        keys.add(("sa", principal.namespace, principal.username.rsplit(":", 1)[-1]))
    return keys


class PolicyIndex:
    """The policies in force, re-listed at most every `ttl` seconds.

    With `background`, a listing older than two thirds of `ttl` is renewed by one background
    thread while requests go on with the current one; only a listing `ttl` old (the bound)
    is renewed on the request path, holding every request until it is done (and failing
    them if the apiserver does not answer: closed, never stale past the bound). Without
    `background` every renewal is on the request path."""

    def __init__(
        self,
        source: Source,
        *,
        ttl: float = 3.0,
        clock: Callable[[], float] = time.monotonic,
        background: bool = False,
    ) -> None:
        self._source = source
        self._ttl = ttl
        self._clock = clock
        self._background = background
        self._compiled: dict[tuple[str, str], BoundPolicy] = {}
        self._policies: list[BoundPolicy] = []
        self._loaded_at: float | None = None  # when the listing in force was started
        self._lock = threading.Lock()
        self._renewing = False  # a background renewal is running
        #: Moves whenever the set of policies in force changes (see the module docstring).
        self._generation = 0

    def refresh(self) -> None:
        started = self._clock()
        namespaced, cluster = self._source()
        self._install(started, [*namespaced, *cluster])

    def _install(self, started: float, objects: list[Obj]) -> None:
        if self._loaded_at is not None and started < self._loaded_at:
            return  # a listing older than the one in force (a slow background renewal)
        compiled: dict[tuple[str, str], BoundPolicy] = {}
        for obj in objects:
            meta = _mapping(obj.get("metadata"))
            key = (str(meta.get("uid")), str(meta.get("resourceVersion")))
            compiled[key] = self._compiled.get(key) or compile_policy_object(obj)
        if compiled.keys() != self._compiled.keys() or self._loaded_at is None:
            self._generation += 1
        self._compiled = compiled
        self._policies = sorted(compiled.values(), key=lambda p: (p.kind, p.namespace, p.name))
        self._loaded_at = started

    def _renew_in_background(self) -> None:
        try:
            started = self._clock()
            namespaced, cluster = self._source()
            with self._lock:
                self._install(started, [*namespaced, *cluster])
        except Exception as exc:  # the request path renews (and fails closed) at the bound
            log.warning("policies: background re-list failed: %s", type(exc).__name__)
        finally:
            self._renewing = False

    def policies(self) -> list[BoundPolicy]:
        return self.current()[1]

    def current(self) -> tuple[int, list[BoundPolicy]]:
        """(generation, the policies in force), re-listed first when older than `ttl`."""
        with self._lock:
            age = None if self._loaded_at is None else self._clock() - self._loaded_at
            if age is None or age >= self._ttl:
                self.refresh()
            elif self._background and age >= self._ttl * 2 / 3 and not self._renewing:
                self._renewing = True
                threading.Thread(
                    target=self._renew_in_background, name="kustos-policies", daemon=True
                ).start()
            return self._generation, self._policies

    def generation(self) -> int:
        return self.current()[0]

    def applicable(self, principal: Principal, target_namespace: str) -> list[BoundPolicy]:
        """The valid policies that bind `principal` for a request on `target_namespace`."""
        keys = _principal_keys(principal)
        home = principal.namespace if principal.kind == "ServiceAccount" else target_namespace
        return [
            bound
            for bound in self.policies()
            if bound.policy is not None
            and (not bound.namespace or bound.namespace == home)
            and any(s.key in keys for s in bound.subjects)
        ]

    def identity_policies(self, principal: Principal, target_namespace: str) -> list[Policy]:
        return [
            b.policy for b in self.applicable(principal, target_namespace) if b.policy is not None
        ]

    def invalid(self) -> Iterable[BoundPolicy]:
        return [b for b in self.policies() if b.error is not None]


class DecisionCache:
    """Policy decisions by everything they were computed from: the index generation, the
    caller, the action, the secret (ARN, namespace, name, tags, resource policy text), the
    target namespace and every condition key of the request except the clock's. Decisions
    under a policy that reads the clock (`Policy.reads_clock`) are not kept. Bounded: emptied
    when full."""

    def __init__(self, max_entries: int = 20_000) -> None:
        self._max = max_entries
        self._entries: dict[Hashable, Decision] = {}
        #: Decisions answered from the cache and decisions evaluated (tests, metrics).
        self.hits = 0
        self.misses = 0

    @staticmethod
    def key(
        generation: int,
        principal: Principal,
        action: str,
        record: SecretRecord | None,
        context: Mapping[str, Any],
        namespace: str | None,
    ) -> Hashable | None:
        """The cache key, or None when an input cannot be part of one (never cached)."""
        try:
            items = tuple(
                sorted(
                    (k, tuple(v) if isinstance(v, list) else v)
                    for k, v in context.items()
                    if k.lower() not in CLOCK_KEYS
                )
            )
            secret = (
                None
                if record is None
                else (
                    record.arn,
                    record.namespace,
                    record.name,
                    tuple(sorted(record.tags.items())),
                    record.resource_policy,
                )
            )
            key = (
                generation,
                principal.arn,
                principal.username,
                principal.namespace,
                principal.kind,
                principal.groups,
                principal.uid,
                principal.auth_method,
                action,
                secret,
                namespace,
                items,
            )
            hash(key)
        except TypeError:  # an unhashable or unorderable context value
            return None
        return key

    def get(self, key: Hashable | None) -> Decision | None:
        found = None if key is None else self._entries.get(key)
        if found is None:
            self.misses += 1
        else:
            self.hits += 1
        return found

    def put(self, key: Hashable | None, decision: Decision, policies: Iterable[Policy]) -> None:
        if key is None or any(p.reads_clock for p in policies):
            return
        if len(self._entries) >= self._max:
            self._entries.clear()
        self._entries[key] = decision
