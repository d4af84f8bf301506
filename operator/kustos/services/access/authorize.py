"""Access control for the API: who is calling (authenticate) and may they (authorize).

Authentication accepts, by the Authorization header:
* ``Bearer <token>``: a ServiceAccount (or other Kubernetes) token for audience `kustos`,
  judged by TokenReview (`kustos.services.access.tokens`);
* ``AWS4-HMAC-SHA256 ...``: SigV4 with a long-term key Kustos issued, or with session
  credentials from the container-credentials endpoint (``X-Amz-Security-Token``), verified
  by botocore's signer (`kustos.services.access.sigv4`).
Failures raise AuthenticationError carrying AWS's code (MissingAuthenticationTokenException,
IncompleteSignatureException, InvalidSignatureException, UnrecognizedClientException,
ExpiredTokenException) and never echo credentials.

Authorization builds the policy request (principal ARN, ``secretsmanager:<Op>``, secret ARN,
condition keys) and evaluates the caller's identity policies (`kustos.services.access.policies`)
with the secret's resource policy (`kustos.policy.evaluate`); decisions are reused per
policy generation (`kustos.services.access.policies.DecisionCache`: a changed identity policy is in
force within the index's 3 s, a changed resource policy at once). A denial raises
AccessDeniedError worded as AWS words it and posts an AccessDenied Event on the
ManagedSecret naming the caller (best effort, off the request path, throttled). The caller
(the API server) writes the audit record, allowed or denied.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from kubernetes.client import ApiClient

from kustos.crypto import Keyring
from kustos.errors import AccessDeniedError, AuthenticationError, MalformedPolicyError
from kustos.kube.access import AccessGateway
from kustos.kube.events import EventSink
from kustos.models.identity import Principal
from kustos.models.records import SecretRecord
from kustos.models.request import RequestView
from kustos.policy import (
    ContextValue,
    Decision,
    Policy,
    PolicyKind,
    Request,
    evaluate,
    group_arn,
    parse_policy,
)
from kustos.services.access.denials import DenialEvents, denial_message
from kustos.services.access.keys import SESSION_PREFIX, AccessKeyService, SessionCredentials
from kustos.services.access.policies import DecisionCache, PolicyIndex
from kustos.services.access.revocations import RevocationList, jwt_issued_at
from kustos.services.access.sigv4 import check_scope, parse_authorization, verify_signature
from kustos.services.access.sigv4_keys import SigningKeys
from kustos.services.access.tokens import TokenAuthenticator, jwt_expiry
from kustos.store.base import Store

__all__ = ["AccessService", "build_access_service"]

log = logging.getLogger(__name__)
SERVICE = "secretsmanager"


def _action(action: str) -> str:
    return action if ":" in action else f"{SERVICE}:{action}"


class AccessService:
    def __init__(
        self,
        tokens: TokenAuthenticator,
        keys: AccessKeyService,
        policies: PolicyIndex,
        *,
        region: str,
        denials: DenialEvents | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        revocations: RevocationList | None = None,
    ) -> None:
        self.tokens = tokens
        self.revocations = revocations
        self.keys = keys
        self.policies = policies
        self.region = region
        self._denials = denials
        self._clock = clock
        self._resource_policies: dict[str, Policy | None] = {}
        self._signing_keys = SigningKeys()
        self._lock = threading.Lock()
        #: Decisions reused while the policies they were made under are in force.
        self._decisions = DecisionCache()

    # -- authentication -----------------------------------------------------------------
    def authenticate(self, req: RequestView) -> Principal:
        header = req.headers.get("authorization")
        if not header or not header.strip():
            raise AuthenticationError(
                "Missing Authentication Token", aws_code="MissingAuthenticationTokenException"
            )
        scheme, _, rest = header.strip().partition(" ")
        if scheme.lower() == "bearer":
            return self._bearer(rest, source=req.remote_addr or None)
        if scheme == "AWS4-HMAC-SHA256":
            return self._sigv4(req, header)
        raise AuthenticationError(
            "Authorization header must be 'Bearer <token>' or AWS4-HMAC-SHA256",
            aws_code="IncompleteSignatureException",
        )

    def _sigv4(self, req: RequestView, header: str) -> Principal:
        parsed = parse_authorization(header)
        amz_date = check_scope(
            parsed, req.headers, region=self.region, service=SERVICE, now=self._clock()
        )
        token = req.headers.get("x-amz-security-token")
        if token:
            principal, secret = self.keys.open_session(parsed.access_key_id, token)
        elif parsed.access_key_id.startswith(SESSION_PREFIX):
            raise AuthenticationError(
                "The security token included in the request is invalid.",
                aws_code="UnrecognizedClientException",
            )
        else:
            principal, secret = self.keys.lookup(parsed.access_key_id)
        signing_key = self._signing_keys.get(
            parsed.access_key_id, secret, parsed.date, parsed.region, parsed.service
        )
        verify_signature(
            parsed,
            method=req.method,
            scheme=req.scheme,
            path=req.path,
            query=req.query,
            headers=req.headers,
            body=req.body,
            amz_date=amz_date,
            secret_key=secret,
            signing_key=signing_key,
        )
        return principal

    def container_caller(
        self, authorization: str, source: str | None = None
    ) -> tuple[Principal, str]:
        """Who holds the Kubernetes token of a container-credentials request, and the token.

        botocore sends the token file's content as the Authorization header verbatim;
        a ``Bearer`` prefix is accepted too. TokenReview only: `session_for` then checks
        revocation and issues.
        """
        token = authorization.strip()
        if token[:7].lower() == "bearer ":
            token = token[7:].strip()
        if not token:
            raise AuthenticationError(
                "Missing Authentication Token", aws_code="MissingAuthenticationTokenException"
            )
        return self.tokens.authenticate(token, source=source), token

    def session_for(self, principal: Principal, token: str) -> SessionCredentials:
        """Session credentials for `principal`, proven by `token`: refused if the token was
        issued before the principal was revoked; never valid past the token's expiry."""
        if self.revocations is not None:
            self.revocations.check(principal.arn, jwt_issued_at(token))
        expiry = jwt_expiry(token)  # the token was just accepted, so its claims are genuine
        not_after = None if expiry is None else datetime.fromtimestamp(expiry, UTC)
        return self.keys.issue_session(principal, not_after=not_after)

    def credentials_for(self, authorization: str) -> SessionCredentials:
        """`container_caller` then `session_for` (unaudited; the endpoint uses
        `kustos.services.access.container_credentials`, which audits each issue)."""
        return self.session_for(*self.container_caller(authorization))

    def _bearer(self, token: str, source: str | None = None) -> Principal:
        """TokenReview (cached), then revocation: refused if issued (JWT ``iat``) before
        the principal was revoked (`kustos.services.access.revocations`)."""
        principal, issued_at = self.tokens.identify(token, source=source)
        if self.revocations is not None:
            self.revocations.check(principal.arn, issued_at)
        return principal

    @staticmethod
    def request_context(req: RequestView) -> dict[str, ContextValue]:
        """Condition keys that come from the HTTP request itself; merge into `context`."""
        context: dict[str, ContextValue] = {
            "aws:SourceIp": req.remote_addr or None,
            "aws:SecureTransport": req.scheme == "https",
        }
        agent = req.headers.get("user-agent")
        if agent:
            context["aws:UserAgent"] = agent
        return context

    # -- authorization ------------------------------------------------------------------
    def simulate(
        self,
        principal: Principal,
        action: str,
        record: SecretRecord | None,
        context: Mapping[str, Any] | None = None,
        *,
        namespace: str | None = None,
        possible: bool = False,
    ) -> Decision:
        """The decision, without raising or posting anything (`kustos policy simulate`);
        with `possible`, whether any request context could be allowed (`who-can`)."""
        inputs = self._inputs(principal, _action(action), record, context or {}, namespace)
        return evaluate(*inputs, possible=possible)

    def authorize(
        self,
        principal: Principal,
        action: str,
        record: SecretRecord | None,
        context: Mapping[str, Any] | None = None,
        *,
        namespace: str | None = None,
    ) -> Decision:
        """Allow or raise AccessDeniedError. `record` is the secret acted on (for CreateSecret,
        the record about to be created); None for actions on no secret (ListSecrets,
        GetRandomPassword), which then target `namespace`, else the context's `kustos:Namespace`,
        else the caller's own namespace."""
        action = _action(action)
        context = context or {}
        key = DecisionCache.key(
            self.policies.generation(), principal, action, record, context, namespace
        )
        decision = self._decisions.get(key)
        if decision is not None and decision.allowed:
            return decision
        request, identity, resource = self._inputs(principal, action, record, context, namespace)
        if decision is None:
            decision = evaluate(request, identity, resource)
            self._decisions.put(key, decision, [*identity, *([resource] if resource else [])])
        if decision.allowed:
            return decision
        if record is not None and self._denials is not None:
            self._denials.post(principal, action, record, decision)
        raise AccessDeniedError(denial_message(principal, action, request, decision))

    def _inputs(
        self,
        principal: Principal,
        action: str,
        record: SecretRecord | None,
        context: Mapping[str, Any],
        namespace: str | None,
    ) -> tuple[Request, list[Policy], Policy | None]:
        if record is not None:
            target = record.namespace
        else:
            target = namespace or str(context.get("kustos:Namespace") or principal.namespace)
        home = principal.namespace if principal.kind == "ServiceAccount" else target
        now = self._clock()
        derived: dict[str, ContextValue] = {
            "aws:CurrentTime": now,
            "aws:EpochTime": int(now.timestamp()),
            "aws:userid": principal.uid or None,
            "kustos:AuthMethod": principal.auth_method or None,
        }
        if record is not None:
            derived["secretsmanager:Name"] = record.name
            for key, value in record.tags.items():
                derived[f"aws:ResourceTag/{key}"] = value
        lowered = {k.lower() for k in derived}
        merged: dict[str, ContextValue] = {
            k: v for k, v in context.items() if k.lower() not in lowered
        }
        merged.update(derived)
        request = Request(
            principal=principal.arn,
            action=action,
            resource=record.arn if record is not None else "*",
            context=merged,
            principal_namespace=home or None,
            resource_namespace=target or None,
            groups=tuple(group_arn(g) for g in principal.groups),
        )
        identity = self.policies.identity_policies(principal, target)
        resource = self.resource_policy(record) if record is not None else None
        return request, identity, resource

    def resource_policy(self, record: SecretRecord) -> Policy | None:
        """The secret's resource policy in force, compiled (None when it has none)."""
        text = record.resource_policy
        if not text:
            return None
        key = hashlib.sha256(text.encode()).hexdigest()
        with self._lock:
            if key in self._resource_policies:
                return self._resource_policies[key]
        try:
            policy: Policy | None = parse_policy(
                text, kind=PolicyKind.RESOURCE, name=f"resource policy of {record.name}"
            )
        except MalformedPolicyError as exc:
            log.warning("ignoring the unparsable resource policy of %s: %s", record.arn, exc)
            policy = None
        with self._lock:
            if len(self._resource_policies) > 4096:
                self._resource_policies.clear()
            self._resource_policies[key] = policy
        return policy

    def close(self) -> None:
        if self._denials is not None:
            self._denials.close()


def build_access_service(
    api: ApiClient, store: Store, keyring: Callable[[], Keyring], events: EventSink, region: str
) -> AccessService:
    """The AccessService on the cluster at `api` and the store `store`."""
    gateway = AccessGateway(api)
    revocations = RevocationList(store.revocations.all)
    return AccessService(
        TokenAuthenticator(gateway),
        AccessKeyService(store.access_keys, keyring, revocations=revocations),
        PolicyIndex(gateway.list_policies, background=True),
        region=region,
        denials=DenialEvents(events, gateway.managed_secret_uid),
        revocations=revocations,
    )
