"""Secrets Manager RotateSecret and CancelRotateSecret, validated as AWS validates them.

How to rotate is the ManagedSecret's `spec.rotation` (the rotator and its settings). AWS code
names a Lambda "rotation function" in `RotationLambdaARN`; in Kustos that is a *rotation
function* of the secret's own cluster and namespace, in one of two forms:
`arn:kustos:lambda:<cluster>:<namespace>:function:<name>[:<qualifier>]` or the bare `<name>`.
`<name>` is a rotator (`generated`, `postgresql`, ...) or, failing that, a rotation webhook
registered in the namespace: a Secret `<name>` labelled `kustos.io/rotation-function=webhook`
holding `url` and `signingKey` (optionally `caData`, `timeoutSeconds`). Any other ARN - another
partition (`arn:aws:...`), cluster or namespace, or a name that is neither - is refused as AWS
refuses a function it cannot invoke (AccessDeniedException, AWS's message).

A rotator that needs no settings (`generated`) is configured from the ARN alone, so a secret
created through the API can rotate; so is a registered webhook (its `url`, `caData` and
`timeoutSeconds` are copied into `spec.rotation.webhook`, the signing key is referenced). A
rotator that needs settings (a database) must already be the one in `spec.rotation`.

RotationRules are checked as AWS checks them (the ManagedSecret itself may allow shorter
schedules, for tests and demos): `AutomaticallyAfterDays` 1-1000 (the model's range) or a
`ScheduleExpression` - `rate(N hours)` of at least 4 hours, `rate(N days)` up to 1000 days,
or a 6-field `cron(...)` no more often than every 4 hours - not both; `Duration` from 1h to
24h and not longer than the interval. The rules become `spec.rotation.schedule`/`window`; unless
`RotateImmediately` is false, the operator is asked to rotate now through the
`kustos.io/rotate-now` annotation, whose value (the ClientRequestToken) becomes the new
version's id, as in AWS. The rotation itself is the operator's. CancelRotateSecret turns
rotation off as AWS does (RotationEnabled false): it removes `spec.rotation` and keeps it in
the record, so a later RotateSecret (with no or the same RotationLambdaARN) puts it back,
database settings included, as AWS keeps the rotation function.
"""

from __future__ import annotations

import base64
import binascii
import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from kustos.errors import AccessDeniedError, InvalidParameterError, InvalidRequestError
from kustos.kube.secrets import SecretGateway
from kustos.models.records import SecretRecord
from kustos.rotation.registry import known_rotators
from kustos.rotation.schedule import parse_schedule
from kustos.services.api.call import Call, Deps
from kustos.services.api.ids import find, not_deleted
from kustos.services.core.spec_fields import record_fields
from kustos.services.rotation.service import ANNOTATION_ROTATE_NOW
from kustos.services.rotation.support import FUNCTION_LABEL, FUNCTION_WEBHOOK

__all__ = [
    "WEBHOOK_LABEL",
    "cancel_rotate_secret",
    "check_rotation_rules",
    "rotate_secret",
    "rotator_of_arn",
]

Result = dict[str, Any]
#: Rotators that can be configured from their name alone.
#: Where CancelRotateSecret keeps the `spec.rotation` it removed, for RotateSecret to restore.
_CANCELLED = "cancelled_rotation"
_SELF_CONFIGURING: dict[str, dict[str, Any]] = {"generated": {}}
_FUNCTION = re.compile(
    r"^arn:(?P<partition>[^:]+):(?P<service>[^:]+):(?P<region>[^:]*):"
    r"(?P<account>[^:]*):function:(?P<name>[A-Za-z0-9_.-]+)(?::[^:]+)?$"
)
_FUNCTION_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,253}$")
_K8S_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")
#: The label that registers a Secret as a rotation webhook (a rotation function) of its
#: namespace (the signing key of such a Secret serves every ManagedSecret there).
WEBHOOK_LABEL = FUNCTION_LABEL
#: AWS's answer when it cannot invoke the rotation function an ARN names.
_CANNOT_INVOKE = (
    "Secrets Manager cannot invoke the specified Lambda function. Ensure that the "
    "function policy grants access to the principal secretsmanager.amazonaws.com."
)
_RATE = re.compile(r"^rate\((\d+) (hour|hours|day|days)\)$")
_HOURS = re.compile(r"^(\d+)h$")
_NO_FUNCTION = (
    "You tried to enable rotation on a secret that doesn't already have a Lambda "
    "function ARN configured and you didn't include such an ARN as a parameter "
    "in this call."
)


def rotator_of_arn(
    arn: str,
    cluster: str | None = None,
    namespace: str | None = None,
    projected: SecretGateway | None = None,
) -> tuple[str, dict[str, Any] | None]:
    """The rotator a RotationLambdaARN names, and for a registered webhook the
    `spec.rotation` section it stands for; AccessDeniedException (AWS's answer for a
    function it cannot invoke) for any other ARN."""
    match = _FUNCTION.match(arn)
    if match is None and (arn.startswith("arn:") or not _FUNCTION_NAME.match(arn)):
        raise _cannot_invoke()
    if match is not None and (
        match["partition"] != "kustos"
        or match["service"] != "lambda"
        or (cluster is not None and match["region"] != cluster)
        or (namespace is not None and match["account"] != namespace)
    ):
        raise _cannot_invoke()
    name = match["name"] if match else arn
    if name in known_rotators():
        return name, None
    if projected is not None and namespace is not None:
        section = _registered_webhook(projected, namespace, name)
        if section is not None:
            return "webhook", section
    raise _cannot_invoke()


def _cannot_invoke() -> AccessDeniedError:
    return AccessDeniedError(_CANNOT_INVOKE)


def _registered_webhook(
    projected: SecretGateway, namespace: str, name: str
) -> dict[str, Any] | None:
    """The `spec.rotation` section of the webhook Secret `name` registers, or None."""
    obj = projected.get(namespace, name) if _K8S_NAME.match(name) else None
    labels = ((obj or {}).get("metadata") or {}).get("labels") or {}
    if obj is None or labels.get(WEBHOOK_LABEL) != FUNCTION_WEBHOOK:
        return None
    data = obj.get("data") or {}

    def text(key: str) -> str | None:
        raw = data.get(key)
        if raw is None:
            return None
        try:
            return base64.b64decode(raw).decode()
        except (binascii.Error, UnicodeDecodeError):
            return None

    url, timeout = text("url"), text("timeoutSeconds")
    if not url or not url.startswith("https://") or data.get("signingKey") is None:
        raise InvalidRequestError(
            f"Rotation webhook {name} (Secret {namespace}/{name}) needs an https:// url and a "
            "signingKey."
        )
    section: dict[str, Any] = {
        "url": url,
        "signingKeySecretRef": {"name": name, "key": "signingKey"},
    }
    if text("caData"):
        section["caData"] = text("caData")
    if timeout:
        try:
            seconds = float(timeout)
            section["timeoutSeconds"] = int(seconds) if seconds.is_integer() else seconds
        except ValueError:
            raise InvalidRequestError(
                f"Rotation webhook {name}: timeoutSeconds is not a number."
            ) from None
    return {"webhook": section}


def check_rotation_rules(rules: dict[str, Any]) -> dict[str, str]:
    """AWS's validation of RotationRules; the `spec.rotation` fields they stand for."""
    days, expression = rules.get("AutomaticallyAfterDays"), rules.get("ScheduleExpression")
    duration = rules.get("Duration")
    if days is not None and expression is not None:
        raise InvalidParameterError(
            "You cannot specify both rotation frequency and schedule expression together."
        )
    if days is None and expression is None:
        if duration is not None:
            raise InvalidParameterError(
                "You must specify a rotation frequency or a schedule expression with a Duration."
            )
        return {}
    if expression is not None:
        expression = " ".join(str(expression).split())
        rate = _RATE.match(expression)
        if rate is not None:
            count, unit = int(rate[1]), rate[2]
            hours = count * (24 if unit.startswith("day") else 1)
            if hours < 4 or hours > 1000 * 24:
                raise InvalidParameterError(
                    "The schedule expression rate must be between 4 hours and 1000 days."
                )
        elif not (expression.startswith("cron(") and len(expression[5:-1].split()) == 6):
            raise InvalidParameterError(
                f"Invalid schedule expression: {expression[:256]}. "
                "Use rate(N hours), rate(N days) or cron(6 fields)."
            )
        schedule = expression
    else:
        schedule = f"rate({days} days)"
    out = {"schedule": schedule}
    if duration is not None:
        hours_match = _HOURS.match(str(duration))
        if hours_match is None or not 1 <= int(hours_match[1]) <= 24:
            raise InvalidParameterError("The rotation window Duration must be between 1h and 24h.")
        out["window"] = str(duration)
    try:
        parsed = parse_schedule(schedule, out.get("window"))
    except InvalidParameterError as exc:
        raise InvalidParameterError(f"Invalid RotationRules: {exc.message}") from None
    if parsed.kind == "cron" and parsed.shortest_interval(  # AWS's shortest interval too
        _now()
    ) < timedelta(hours=4):
        raise InvalidParameterError(
            "The schedule expression must not rotate more often than every 4 hours."
        )
    return out


def _now() -> datetime:
    return datetime.now(UTC)


def rotate_secret(deps: Deps, call: Call, p: dict[str, Any]) -> Result:
    record = not_deleted(
        find(
            deps,
            call,
            "RotateSecret",
            p["SecretId"],
            {"secretsmanager:RotationLambdaARN": p.get("RotationLambdaARN")},
        )
    )
    rules = dict(p.get("RotationRules") or {})
    schedule = check_rotation_rules(rules)
    lambda_arn = p.get("RotationLambdaARN")
    wanted, function = (
        rotator_of_arn(lambda_arn, deps.cluster, record.namespace, deps.projected)
        if lambda_arn
        else (None, None)
    )
    if record.object_name is None:
        raise InvalidRequestError("The secret has no ManagedSecret object to rotate through.")
    obj = deps.objects.get(record.namespace, record.object_name) or {}
    live = dict((obj.get("spec") or {}).get("rotation") or {})
    cancelled = dict(record.extra.get(_CANCELLED) or {})
    configured = _rotator_in(live) or _rotator_in(cancelled)
    where = f"ManagedSecret {record.namespace}/{record.object_name}"
    section: dict[str, Any] = {}
    if function is not None and _same_webhook(live or cancelled, function):
        section = {} if live else cancelled  # the webhook it has: schedule changes only
    elif function is not None:
        if live:
            raise InvalidParameterError(
                f"RotationLambdaARN names rotation webhook {str(lambda_arn)[:256]}, but {where} "
                f"rotates with {configured}; change spec.rotation to switch rotators."
            )
        section = function
    elif not live and cancelled and wanted in (None, configured):
        section = cancelled  # rotation turned back on with the rotator it had
    elif wanted is not None and wanted != configured:
        if live:
            raise InvalidParameterError(
                f"RotationLambdaARN names rotator {wanted}, but {where} rotates with "
                f"{configured}; change spec.rotation to switch rotators."
            )
        if wanted not in _SELF_CONFIGURING:
            raise InvalidRequestError(
                f"Rotator {wanted} needs settings: add spec.rotation.{wanted} to {where}."
            )
        section = {wanted: dict(_SELF_CONFIGURING[wanted])}
    elif configured is None:
        raise InvalidRequestError(
            f"{_NO_FUNCTION} (Kustos: name a rotator in "
            f"RotationLambdaARN or add a rotation section to {where}.)"
        )
    immediately = p.get("RotateImmediately", True)
    token = p.get("ClientRequestToken") or str(uuid.uuid4())
    call.commit_point(ARN=record.arn, Name=record.name)
    extra = {k: v for k, v in record.extra.items() if k != _CANCELLED}
    if lambda_arn:
        extra["rotation_lambda_arn"] = lambda_arn
    changes: dict[str, Any] = {"rotation_enabled": True, "extra": extra}
    if rules:
        changes["rotation_rules"] = rules
    deps.secrets.update(record.evolve(**changes))
    patch: dict[str, Any] = {}
    if schedule or section:
        patch["spec"] = {"rotation": {**section, **schedule}}
    if immediately:
        patch["metadata"] = {"annotations": {ANNOTATION_ROTATE_NOW: token}}
    if patch:
        deps.objects.merge_patch(record.namespace, record.object_name, patch)
    out: Result = {"ARN": record.arn, "Name": record.name}
    if immediately:
        out["VersionId"] = token
    return out


def _same_webhook(rotation: dict[str, Any], function: dict[str, Any]) -> bool:
    """Whether `rotation` already is the registered webhook `function` stands for."""
    have, want = rotation.get("webhook") or {}, function["webhook"]
    return (
        bool(have)
        and have.get("url") == want["url"]
        and (have.get("signingKeySecretRef") or {}).get("name")
        == want["signingKeySecretRef"]["name"]
    )


def _rotator_in(rotation: dict[str, Any]) -> str | None:
    if isinstance(rotation.get("custom"), dict):
        return str(rotation["custom"].get("rotator") or "custom")
    return next(
        (
            name
            for name in ("generated", "postgresql", "mysql", "webhook")
            if rotation.get(name) is not None
        ),
        None,
    )


def cancel_rotate_secret(deps: Deps, call: Call, p: dict[str, Any]) -> Result:
    record: SecretRecord = not_deleted(find(deps, call, "CancelRotateSecret", p["SecretId"]))
    pending = deps.store.get_version(record.arn, stage="AWSPENDING")
    call.commit_point(ARN=record.arn, Name=record.name)
    obj = (
        (deps.objects.get(record.namespace, record.object_name) or {}) if record.object_name else {}
    )
    rotation = (obj.get("spec") or {}).get("rotation")
    extra = {**record.extra, _CANCELLED: rotation} if rotation else dict(record.extra)
    patched = None
    if record.object_name:  # the spec first (the authority), then the record at its generation
        patch: dict[str, Any] = {"metadata": {"annotations": {ANNOTATION_ROTATE_NOW: None}}}
        if rotation:
            patch["spec"] = {"rotation": None}
        patched = deps.objects.merge_patch(record.namespace, record.object_name, patch)
    deps.secrets.update(record.evolve(rotation_enabled=False, next_rotation_at=None, extra=extra))
    if patched is not None:  # a pass over the previous spec can no longer re-enable it
        meta = patched.get("metadata") or {}
        deps.secrets.apply_spec(
            record,
            int(meta.get("generation") or 0),
            record_fields(patched.get("spec") or {}, record),
            meta.get("uid"),
        )
    out: Result = {"ARN": record.arn, "Name": record.name}
    if pending is not None:
        out["VersionId"] = pending.version_id
    return out
