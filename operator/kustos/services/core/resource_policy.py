"""The resource policy in force on a secret, whichever way it was written.

A secret has one resource policy in force: the text in its record, the one AccessService
evaluates and GetResourcePolicy answers. Two writers put it there, and both go through
`checked_policy`: the document must parse as a resource policy
(MalformedPolicyDocumentException), fit Secrets Manager's 20,480-character limit, and under
BlockPublicPolicy must not grant public access (PublicPolicyException).

- PutResourcePolicy / DeleteResourcePolicy (the API) write both the ManagedSecret's
  `spec.resourcePolicy` and the record.
- The ManagedSecret controller makes the spec's document the one in force (`follow_spec`).
  The spec has no BlockPublicPolicy switch, so it is always applied there, except to the
  exact document a PutResourcePolicy caller accepted with `BlockPublicPolicy: false`: the
  API notes that document's digest in the record (`extra[PUBLIC_ACCEPTED]`) before it
  patches the spec. A document that fails the checks is not put in force; the previous one
  stays, and the controller reports the problem on the object.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from kustos.errors import ClientError, MalformedPolicyError
from kustos.models.records import SecretRecord
from kustos.policy import ensure_not_public, parse_policy
from kustos.policy.model import Policy, PolicyKind
from kustos.policy.public import MAX_RESOURCE_POLICY_CHARS

__all__ = [
    "PUBLIC_ACCEPTED",
    "SpecPolicy",
    "checked_policy",
    "digest",
    "follow_spec",
]

#: Record bookkeeping: digest of the public document a PutResourcePolicy caller accepted.
PUBLIC_ACCEPTED = "public_policy_accepted"

Document = str | Mapping[str, Any]


def _text(document: Document) -> str:
    return document if isinstance(document, str) else json.dumps(document, separators=(",", ":"))


def digest(document: Document) -> str:
    """The document's identity, independent of key order and whitespace."""
    text = _text(document)
    with contextlib.suppress(ValueError):  # unparsable: its own text identifies it
        text = json.dumps(json.loads(text), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def checked_policy(document: Document, *, name: str, block_public: bool) -> tuple[str, Policy]:
    """The text to keep in force and its parsed policy; raises MalformedPolicyError or
    PublicPolicyError (messages name the element at fault, never a value of a secret)."""
    text = _text(document)
    if len(text) > MAX_RESOURCE_POLICY_CHARS:
        raise MalformedPolicyError(
            f"The resource policy exceeds {MAX_RESOURCE_POLICY_CHARS} characters"
        )
    policy = parse_policy(text, kind=PolicyKind.RESOURCE, name=name)
    if block_public:
        ensure_not_public(policy)
    return text, policy


@dataclass(frozen=True)
class SpecPolicy:
    """What `follow_spec` decided. `record` is the record to write when `changed`;
    `problem` says why the spec's document is not in force (then nothing is written)."""

    record: SecretRecord
    changed: bool = False
    problem: str | None = None


def follow_spec(record: SecretRecord, document: Document | None) -> SpecPolicy:
    """Make `document` (the spec's resourcePolicy; None: no policy) the one in force."""
    if document is None:
        if record.resource_policy is None:
            return SpecPolicy(record)
        return SpecPolicy(_evolve(record, None), changed=True)
    wanted = digest(document)
    if record.resource_policy is not None and digest(record.resource_policy) == wanted:
        return SpecPolicy(record)
    block_public = record.extra.get(PUBLIC_ACCEPTED) != wanted
    try:
        text, _ = checked_policy(document, name=record.arn, block_public=block_public)
    except ClientError as exc:
        return SpecPolicy(record, problem=f"{exc.aws_code}: {exc.message}")
    return SpecPolicy(_evolve(record, text), changed=True)


def _evolve(record: SecretRecord, text: str | None) -> SecretRecord:
    extra = dict(record.extra)
    if text is None or extra.get(PUBLIC_ACCEPTED) != digest(text):
        extra.pop(PUBLIC_ACCEPTED, None)
    return record.evolve(resource_policy=text, extra=extra)
