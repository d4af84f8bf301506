"""Kustos identities as principal ARNs, and the Principal/NotPrincipal element.

Owns the identity scheme (namespace ~ AWS account):

    ServiceAccount   arn:kustos:iam::<namespace>:serviceaccount/<name>
    Kubernetes user  arn:kustos:iam::cluster:user/<username>
    Kubernetes group arn:kustos:iam::cluster:group/<group>
    namespace root   arn:kustos:iam::<namespace>:root

Principal forms: `"*"`, `{"AWS": "*"}`, `{"AWS": [ARNs or bare namespace names]}`
(`"Kubernetes"` is an alias of `"AWS"`). A bare namespace name means that namespace's root.
As in IAM, wildcards inside principal ARNs are rejected (use a Condition on
aws:PrincipalArn with ArnLike instead).

Matching has two strengths, as in IAM. Naming the caller (its ARN, one of its group ARNs,
or `*`) grants *directly*. Naming the caller's namespace root *delegates* to that
namespace: the grant takes effect only together with an identity policy there.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from enum import IntEnum

from kustos.errors import MalformedPolicyError
from kustos.policy.model import PrincipalSpec

__all__ = [
    "CLUSTER_ACCOUNT",
    "PrincipalMatch",
    "group_arn",
    "match_principal",
    "namespace_root_arn",
    "parse_principal",
    "principal_namespace",
    "serviceaccount_arn",
    "user_arn",
]

IAM_PREFIX = "arn:kustos:iam::"
#: The account segment of cluster-scoped identities (Kubernetes users and groups).
CLUSTER_ACCOUNT = "cluster"
_NAMESPACE = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_PRINCIPAL_ARN = re.compile(
    r"^arn:kustos:iam::(?P<account>[^:]+):(?P<resource>root|(serviceaccount|user|group)/[^*?]+)$"
)
_PRINCIPAL_KEYS = ("AWS", "Kubernetes")


class PrincipalMatch(IntEnum):
    NONE = 0
    DELEGATED = 1  # matched only through the namespace root
    DIRECT = 2


def serviceaccount_arn(namespace: str, name: str) -> str:
    return f"{IAM_PREFIX}{namespace}:serviceaccount/{name}"


def user_arn(username: str) -> str:
    return f"{IAM_PREFIX}{CLUSTER_ACCOUNT}:user/{username}"


def group_arn(group: str) -> str:
    return f"{IAM_PREFIX}{CLUSTER_ACCOUNT}:group/{group}"


def namespace_root_arn(namespace: str) -> str:
    return f"{IAM_PREFIX}{namespace}:root"


def principal_namespace(arn: str) -> str:
    """The account segment (namespace, or `cluster`) of a principal or secret ARN."""
    fields = arn.split(":", 5)
    if len(fields) < 6 or fields[0] != "arn" or not fields[4]:
        raise ValueError(f"not an ARN with an account segment: {arn!r}")
    return fields[4]


def _principal_arn(value: object) -> str:
    if not isinstance(value, str) or not value:
        raise MalformedPolicyError(f"Principal entries must be non-empty strings, got {value!r}")
    if _NAMESPACE.match(value):
        return namespace_root_arn(value)
    if "*" in value or "?" in value:
        raise MalformedPolicyError(
            f"Principal {value!r}: wildcards are only allowed as a lone '*'; "
            "use a Condition on aws:PrincipalArn with ArnLike instead"
        )
    if not _PRINCIPAL_ARN.match(value):
        raise MalformedPolicyError(
            f"Principal {value!r} is neither a namespace name nor a Kustos principal ARN "
            "(arn:kustos:iam::<namespace>:root|serviceaccount/<name>, "
            "arn:kustos:iam::cluster:user/<name>|group/<name>)"
        )
    return value


def parse_principal(raw: object) -> PrincipalSpec:
    """Parse and validate a Principal or NotPrincipal element."""
    if raw == "*":
        return PrincipalSpec(everyone=True)
    if not isinstance(raw, dict) or not raw:
        raise MalformedPolicyError(
            f'Principal must be "*" or an object such as {{"AWS": [...]}}, got {raw!r}'
        )
    arns: list[str] = []
    everyone = False
    for key, value in raw.items():
        if key not in _PRINCIPAL_KEYS:
            raise MalformedPolicyError(
                f'Principal type {key!r} is not supported (use "AWS" or "Kubernetes")'
            )
        entries = value if isinstance(value, list) else [value]
        if not entries:
            raise MalformedPolicyError(f"Principal {key!r} must not be an empty list")
        for entry in entries:
            if entry == "*":
                everyone = True
            else:
                arns.append(_principal_arn(entry))
    return PrincipalSpec(everyone=everyone, arns=tuple(dict.fromkeys(arns)))


def match_principal(
    spec: PrincipalSpec, caller: str, caller_namespace: str, groups: Iterable[str] = ()
) -> PrincipalMatch:
    """How strongly `spec` names the caller (see the module docstring)."""
    if spec.everyone:
        return PrincipalMatch.DIRECT
    names = {caller, *groups}
    if any(arn in names for arn in spec.arns):
        return PrincipalMatch.DIRECT
    if namespace_root_arn(caller_namespace) in spec.arns:
        return PrincipalMatch.DELEGATED
    return PrincipalMatch.NONE
