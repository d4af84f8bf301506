"""Verification of AWS Signature Version 4 on incoming requests, by botocore's own signer.

Kustos never re-implements the canonicalization: it rebuilds the request as a botocore
`AWSRequest` from exactly the headers the client listed in SignedHeaders, stamps it with the
client's X-Amz-Date, and lets `botocore.auth.SigV4Auth` compute the canonical request, the
string to sign and the signature, which is compared in constant time.

Checks, in the order AWS reports them: the Authorization header's shape
(IncompleteSignatureException), the timestamp within +/- `max_skew` of now and the
credential scope (date, region = the cluster name, service, terminator) -- both
InvalidSignatureException -- then, once the caller has looked the key up, the signature
itself. A body hash header (X-Amz-Content-SHA256), when sent, must equal the body's real
hash, so an unsigned or stale hash cannot detach the body from the signature.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest, HTTPHeaders
from botocore.credentials import Credentials

from kustos.errors import AuthenticationError

__all__ = ["ALGORITHM", "SigV4Header", "check_scope", "parse_authorization", "verify_signature"]

ALGORITHM = "AWS4-HMAC-SHA256"
AMZ_DATE_FORMAT = "%Y%m%dT%H%M%SZ"
_FIELD = re.compile(r"\s*(Credential|SignedHeaders|Signature)\s*=\s*([^,\s]*)\s*")
_AMZ_DATE = re.compile(r"[0-9]{8}T[0-9]{6}Z")
_SIGNATURE = re.compile(r"^[0-9a-f]{64}$")
_ACCESS_KEY_ID = re.compile(r"^[A-Z0-9]{16,128}$")


def _incomplete(message: str) -> AuthenticationError:
    return AuthenticationError(message, aws_code="IncompleteSignatureException")


def _bad_signature(message: str) -> AuthenticationError:
    return AuthenticationError(message, aws_code="InvalidSignatureException")


@dataclass(frozen=True)
class SigV4Header:
    """The parsed Authorization header."""

    access_key_id: str
    date: str  # yyyymmdd of the credential scope
    region: str
    service: str
    terminator: str
    signed_headers: tuple[str, ...]
    signature: str


def parse_authorization(value: str) -> SigV4Header:
    algorithm, _, rest = value.strip().partition(" ")
    if algorithm != ALGORITHM:
        raise _incomplete(f"Authorization header must use {ALGORITHM}")
    fields: dict[str, str] = {}
    for part in rest.split(","):
        match = _FIELD.fullmatch(part)
        if match is None or match.group(1) in fields:
            raise _incomplete("Authorization header is malformed")
        fields[match.group(1)] = match.group(2)
    missing = [n for n in ("Credential", "SignedHeaders", "Signature") if not fields.get(n)]
    if missing:
        raise _incomplete(
            f"Authorization header requires {', '.join(repr(m) for m in missing)} parameter(s)"
        )
    scope = fields["Credential"].split("/")
    if len(scope) != 5 or not _ACCESS_KEY_ID.match(scope[0]):
        raise _incomplete(
            "Credential must have the form <AccessKeyId>/<date>/<region>/<service>/aws4_request"
        )
    signed = tuple(fields["SignedHeaders"].split(";"))
    if list(signed) != sorted(set(signed)) or any(h != h.lower() or not h for h in signed):
        raise _incomplete("SignedHeaders must be lower-case, sorted and unique")
    if "host" not in signed:
        raise _incomplete("SignedHeaders must include 'host'")
    if not _SIGNATURE.match(fields["Signature"]):
        raise _incomplete("Signature must be 64 lower-case hex digits")
    return SigV4Header(
        scope[0], scope[1], scope[2], scope[3], scope[4], signed, fields["Signature"]
    )


def request_time(headers: Mapping[str, str]) -> tuple[str, datetime]:
    stamp = headers.get("x-amz-date")
    if not stamp:
        raise _incomplete("Authorization header requires existence of a 'X-Amz-Date' header")
    if _AMZ_DATE.fullmatch(stamp) is None:
        raise _incomplete("X-Amz-Date must have the form yyyyMMddTHHmmssZ")
    try:  # strptime's generality costs more than the rest of the check
        moment = datetime(
            int(stamp[0:4]),
            int(stamp[4:6]),
            int(stamp[6:8]),
            int(stamp[9:11]),
            int(stamp[11:13]),
            int(stamp[13:15]),
            tzinfo=UTC,
        )
    except ValueError:
        raise _incomplete("X-Amz-Date must have the form yyyyMMddTHHmmssZ") from None
    return stamp, moment


def check_scope(
    parsed: SigV4Header,
    headers: Mapping[str, str],
    *,
    region: str,
    service: str,
    now: datetime,
    max_skew: timedelta = timedelta(minutes=5),
) -> str:
    """Timestamp window and credential scope; returns the X-Amz-Date to sign with."""
    stamp, moment = request_time(headers)
    if "x-amz-date" not in parsed.signed_headers:
        raise _incomplete("SignedHeaders must include 'x-amz-date'")
    if "x-amz-target" not in parsed.signed_headers and headers.get("x-amz-target") is not None:
        raise _incomplete("'X-Amz-Target' must be a 'SignedHeader' in the AWS Authorization.")
    if moment < now - max_skew:
        raise _bad_signature(
            f"Signature expired: {stamp} is now earlier than "
            f"{(now - max_skew).strftime(AMZ_DATE_FORMAT)} "
            f"({now.strftime(AMZ_DATE_FORMAT)} - {max_skew.seconds // 60} min.)"
        )
    if moment > now + max_skew:
        raise _bad_signature(
            f"Signature not yet current: {stamp} is still later than "
            f"{(now + max_skew).strftime(AMZ_DATE_FORMAT)} "
            f"({now.strftime(AMZ_DATE_FORMAT)} + {max_skew.seconds // 60} min.)"
        )
    if parsed.date != stamp[:8]:
        raise _bad_signature(
            f"Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date "
            f"from HTTP: '{parsed.date}' != '{stamp[:8]}'"
        )
    if parsed.region != region:
        raise _bad_signature(
            f"Credential should be scoped to a valid region, not '{parsed.region}'; "
            f"this cluster is '{region}'"
        )
    if parsed.service != service:
        raise _bad_signature(f"Credential should be scoped to correct service: '{service}'")
    if parsed.terminator != "aws4_request":
        raise _bad_signature("Credential should be scoped with a valid terminator: 'aws4_request'")
    return stamp


class _Recompute(SigV4Auth):  # type: ignore[misc]
    """botocore's signer, told exactly which headers the client signed, the body's hash
    (already computed to check X-Amz-Content-SHA256) and, when cached, the derived
    signing key of the scope (`kustos.services.access.sigv4_keys`)."""

    def __init__(
        self,
        credentials: Credentials,
        service: str,
        region: str,
        signed: HTTPHeaders,
        body_hash: str,
        signing_key: bytes | None = None,
    ) -> None:
        super().__init__(credentials, service, region)
        self._signed = signed
        self._body_hash = body_hash
        self._signing_key = signing_key

    def headers_to_sign(self, request: Any) -> HTTPHeaders:
        return self._signed

    def payload(self, request: Any) -> str:
        return self._body_hash

    def signature(self, string_to_sign: str, request: Any) -> str:
        if self._signing_key is None:
            return str(super().signature(string_to_sign, request))
        return hmac.new(self._signing_key, string_to_sign.encode(), hashlib.sha256).hexdigest()


def _values(headers: Mapping[str, str], name: str) -> list[str]:
    getall = getattr(headers, "getall", None)
    if getall is not None:
        return list(getall(name, []))
    value = headers.get(name)
    return [] if value is None else [value]


def verify_signature(
    parsed: SigV4Header,
    *,
    method: str,
    scheme: str,
    path: str,
    query: str,
    headers: Mapping[str, str],
    body: bytes,
    amz_date: str,
    secret_key: str,
    signing_key: bytes | None = None,
) -> None:
    """Recompute the signature with botocore; InvalidSignatureException when it differs.
    `signing_key`: the scope's derived key if the caller has it (else derived here)."""
    body_hash = hashlib.sha256(body).hexdigest()
    claimed = headers.get("x-amz-content-sha256")
    if claimed is not None and claimed.strip().lower() != body_hash:
        raise _bad_signature("The provided 'x-amz-content-sha256' header does not match the body")
    signed = HTTPHeaders()
    for name in parsed.signed_headers:
        values = _values(headers, name)
        if not values:
            raise _incomplete(f"Header {name!r} is listed in SignedHeaders but missing")
        for value in values:
            signed.add_header(name, value)
    url = f"{scheme}://{signed['host']}{path}" + (f"?{query}" if query else "")
    request = AWSRequest(method=method.upper(), url=url, data=body, headers=dict(signed.items()))
    request.context["timestamp"] = amz_date
    signer = _Recompute(
        Credentials(parsed.access_key_id, secret_key),
        parsed.service,
        parsed.region,
        signed,
        body_hash,
        signing_key,
    )
    canonical = signer.canonical_request(request)
    expected = signer.signature(signer.string_to_sign(request, canonical), request)
    if not hmac.compare_digest(expected, parsed.signature):
        raise _bad_signature(
            "The request signature we calculated does not match the signature you provided. "
            "Check your AWS Secret Access Key and signing method."
        )
