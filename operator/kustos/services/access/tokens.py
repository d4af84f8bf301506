"""Bearer-token authentication: TokenReview (audience `kustos`), cached, and bounded.

The API server is the only judge of a token. Successes are cached for min(token expiry,
`max_ttl`) under the SHA-256 of the token (the token itself is never kept as a key or
logged). Failures are cached briefly (`negative_ttl`, 5 s) in a separate, bounded map, so a
token replayed in a loop costs one TokenReview per few seconds, a token that starts working
is accepted within seconds, and a flood of forged tokens cannot evict the successes. Distinct
junk tokens are bounded per source address (`RefusalBudget`): once a source has had
`limit` failed reviews in a window, its unknown tokens are refused with ThrottlingException
without asking the API server until the window ends (cached valid tokens still pass). A
token whose JWT `exp` has already passed is refused without asking the API server. Only
tokens whose review names our audience are accepted: a token minted for the Kubernetes API
(or anyone else) is not a Kustos credential.
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import NamedTuple, Protocol

from kustos.errors import AuthenticationError
from kustos.kube.access import TokenReviewResult
from kustos.models.identity import Principal
from kustos.services.access.refusals import RefusalBudget

__all__ = ["AUDIENCE", "Claims", "TokenAuthenticator", "TokenReviewer", "jwt_claims", "jwt_expiry"]

AUDIENCE = "kustos"
_POD_NAME = "authentication.kubernetes.io/pod-name"
_MAX_TOKEN_CHARS = 16_384


class TokenReviewer(Protocol):
    def review_token(self, token: str, audiences: list[str]) -> TokenReviewResult: ...


class Claims(NamedTuple):
    """The time claims of a JWT (epoch seconds), unverified; None where absent."""

    exp: float | None = None
    iat: float | None = None


def _seconds(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def jwt_claims(token: str) -> Claims:
    """`exp` and `iat` of a JWT, unverified; empty if not a readable JWT.

    Only ever used to refuse early, to shorten a cache entry, or (once the API server has
    accepted the token, so they are genuine) for revocation; never to accept.
    """
    parts = token.split(".")
    if len(parts) != 3:
        return Claims()
    try:
        payload = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except (ValueError, TypeError):
        return Claims()
    if not isinstance(payload, dict):
        return Claims()
    return Claims(_seconds(payload.get("exp")), _seconds(payload.get("iat")))


def jwt_expiry(token: str) -> float | None:
    """The `exp` claim (epoch seconds) of a JWT, unverified; None if not a readable JWT."""
    return jwt_claims(token).exp


def _invalid() -> AuthenticationError:
    return AuthenticationError(
        "The security token included in the request is invalid.",
        aws_code="UnrecognizedClientException",
    )


def _expired() -> AuthenticationError:
    return AuthenticationError(
        "The security token included in the request is expired", aws_code="ExpiredTokenException"
    )


def _throttled() -> AuthenticationError:
    return AuthenticationError(
        "Too many failed authentications from this address; retry later.",
        aws_code="ThrottlingException",
    )


class TokenAuthenticator:
    def __init__(
        self,
        reviewer: TokenReviewer,
        *,
        audience: str = AUDIENCE,
        max_ttl: float = 60.0,
        max_entries: int = 4096,
        negative_ttl: float = 5.0,
        budget: RefusalBudget | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._reviewer = reviewer
        self.audience = audience
        self._max_ttl = max_ttl
        self._max_entries = max_entries
        self._negative_ttl = negative_ttl
        self._budget = budget if budget is not None else RefusalBudget()
        self._clock = clock
        #: sha256(token) -> (principal, cached until, the token's `iat`).
        self._cache: OrderedDict[str, tuple[Principal, float, float | None]] = OrderedDict()
        self._refused: OrderedDict[str, tuple[str, float]] = OrderedDict()
        self._lock = threading.Lock()
        #: How many TokenReviews were sent (for tests and metrics).
        self.reviews = 0

    def authenticate(self, token: str, source: str | None = None) -> Principal:
        """The principal of `token`; `source` (the client's address) bounds failed reviews."""
        return self.identify(token, source)[0]

    def identify(self, token: str, source: str | None = None) -> tuple[Principal, float | None]:
        """The principal of `token` and the token's `iat` (for revocation). A cached token
        is answered without decoding it again: its entry ends by its `exp`."""
        token = token.strip()
        if not token or len(token) > _MAX_TOKEN_CHARS:
            raise _invalid()
        now = self._clock()
        key = hashlib.sha256(token.encode()).hexdigest()
        with self._lock:
            hit = self._cache.get(key)
            if hit is not None:
                if hit[1] > now:
                    self._cache.move_to_end(key)
                    return hit[0], hit[2]
                del self._cache[key]
        claims = jwt_claims(token)
        if claims.exp is not None and claims.exp <= now:
            raise _expired()
        with self._lock:
            refused = self._refused.get(key)
            if refused is not None:
                if refused[1] > now:
                    raise _expired() if refused[0] == "ExpiredTokenException" else _invalid()
                del self._refused[key]
        if source is not None and self._budget.over(source):
            raise _throttled()
        try:
            principal = self._review(token)
        except AuthenticationError as exc:
            with self._lock:
                self._refused[key] = (exc.aws_code, now + self._negative_ttl)
                while len(self._refused) > self._max_entries:
                    self._refused.popitem(last=False)
            if source is not None:
                self._budget.admit(source, exc.aws_code)
            raise
        exp = claims.exp
        until = now + self._max_ttl if exp is None else min(exp, now + self._max_ttl)
        with self._lock:
            self._cache[key] = (principal, until, claims.iat)
            while len(self._cache) > self._max_entries:
                self._cache.popitem(last=False)
        return principal, claims.iat

    def _review(self, token: str) -> Principal:
        self.reviews += 1
        result = self._reviewer.review_token(token, [self.audience])
        if not result.authenticated:
            # TokenReview's status.error is free text (the API has no code for it), so this
            # goes by its words; a JWT past its `exp` never gets here (`authenticate`).
            raise _expired() if "expired" in result.error.lower() else _invalid()
        if self.audience not in result.audiences or not result.username:
            raise _invalid()
        pods = result.extra.get(_POD_NAME) or []
        return Principal.user(
            result.username,
            groups=result.groups,
            uid=result.uid,
            auth_method="ServiceAccountToken",
            pod_name=pods[0] if pods else None,
        )

    def forget(self) -> None:
        with self._lock:
            self._cache.clear()
            self._refused.clear()
