"""IAM-style policies for Kustos: parse, evaluate, and check policy documents.

A pure domain mechanism: no I/O, no Kubernetes, no HTTP. Modules:

    model       the parsed vocabulary (Policy, Statement, PrincipalSpec, ConditionClause)
    parse       JSON/dict -> Policy, with MalformedPolicyError for anything malformed
    wildcard    `*`/`?` matching for actions, ARNs and StringLike
    variables   `${aws:username}`-style policy variables
    principals  Kustos identities as principal ARNs; Principal/NotPrincipal matching
    operators   the condition-operator table and value conversion
    context     the request's condition keys (case-insensitive)
    conditions  Condition evaluation (IfExists, ForAnyValue/ForAllValues, negation)
    evaluate    evaluate(request, identity_policies, resource_policy) -> Decision
    public      is_public / ensure_not_public (BlockPublicPolicy), validate_resource_policy
"""

from kustos.policy.context import ContextValue
from kustos.policy.evaluate import (
    Decision,
    DecisionKind,
    Request,
    StatementRef,
    evaluate,
    request_context,
)
from kustos.policy.model import (
    ConditionClause,
    Effect,
    Policy,
    PolicyKind,
    PrincipalSpec,
    Statement,
)
from kustos.policy.parse import parse_policy
from kustos.policy.principals import (
    group_arn,
    namespace_root_arn,
    principal_namespace,
    serviceaccount_arn,
    user_arn,
)
from kustos.policy.public import (
    Finding,
    ensure_not_public,
    is_public,
    public_statements,
    validate_resource_policy,
)
from kustos.policy.wildcard import action_matches, arn_match, glob_match

__all__ = [
    "ConditionClause",
    "ContextValue",
    "Decision",
    "DecisionKind",
    "Effect",
    "Finding",
    "Policy",
    "PolicyKind",
    "PrincipalSpec",
    "Request",
    "Statement",
    "StatementRef",
    "action_matches",
    "arn_match",
    "ensure_not_public",
    "evaluate",
    "glob_match",
    "group_arn",
    "is_public",
    "namespace_root_arn",
    "parse_policy",
    "principal_namespace",
    "public_statements",
    "request_context",
    "serviceaccount_arn",
    "user_arn",
    "validate_resource_policy",
]
