"""The alerting rules (manifests/components/alerts, charts/kustos) use only metrics and labels
Kustos really exports, and the chart ships the same rules as the kustomize component."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from kustos import metrics
from kustos.models.records import SecretRecord

REPO = Path(__file__).resolve().parents[2]
COMPONENT = REPO / "manifests" / "components" / "alerts" / "prometheusrule.yaml"
CHART = REPO / "charts" / "kustos" / "templates" / "prometheusrule.yaml"
NAME = re.compile(r"\bkustos_[a-z_]+\b")
GROUPING = re.compile(r"\b(?:by|without)\s*\(([^)]*)\)")
SELECTOR = re.compile(r"\{([^}]*)\}")


def exported() -> dict[str, set[str]]:
    """Every series name Kustos exposes, with its label names (the store collector's too,
    fed one record with a rotation schedule)."""
    now = datetime.now(UTC)
    record = SecretRecord(
        arn="arn:kustos:secretsmanager:t:ns:secret:s-abcdef",
        namespace="ns",
        name="s",
        created_at=now,
        updated_at=now,
        rotation_enabled=True,
        last_rotated_at=now - timedelta(days=1),
        next_rotation_at=now + timedelta(days=1),
    )
    families = [
        *metrics.REGISTRY.collect(),
        *metrics.StoreCollector(lambda: [record], per_secret=False).collect(),
    ]
    names: dict[str, set[str]] = {}
    for family in families:
        label_names: set[str] = set()
        for sample in family.samples:
            label_names |= set(sample.labels)
        for suffix in ("", "_total", "_count", "_sum", "_bucket"):
            names.setdefault(family.name + suffix, set()).update(label_names)
    # Labelled metrics with no sample yet: their declared labels.
    for metric in (metrics.ROTATIONS, metrics.STORE_ERRORS, metrics.API_REQUESTS):
        declared = set(metric._labelnames)
        names.setdefault(metric._name + "_total", set()).update(declared)
    return names


def rules(doc: dict[str, Any]) -> list[dict[str, Any]]:
    return [rule for group in doc["spec"]["groups"] for rule in group["rules"]]


def problems(expr: str, known: dict[str, set[str]]) -> list[str]:
    found: list[str] = []
    used = NAME.findall(expr)
    if not used:
        found.append("no kustos metric")
    for name in used:
        if name not in known:
            found.append(f"unknown metric {name}")
    labels = {
        label.strip()
        for group in GROUPING.findall(expr)
        for label in group.split(",")
        if label.strip()
    }
    labels |= {
        m.split("=")[0].strip().rstrip("!~")
        for sel in SELECTOR.findall(expr)
        for m in sel.split(",")
        if m.strip()
    }
    have = set().union(*(known.get(name, set()) for name in used))
    found += [f"unknown label {label}" for label in sorted(labels - have)]
    return found


def test_every_rule_expression_uses_real_metric_and_label_names() -> None:
    known = exported()
    doc = yaml.safe_load(COMPONENT.read_text())
    assert doc["kind"] == "PrometheusRule"
    alerts = {rule["alert"]: rule for rule in rules(doc)}
    assert {"KustosRotationFailed", "KustosAuditWriteFailures", "KustosAuditVerifyFailed"} <= set(
        alerts
    )
    for name, rule in alerts.items():
        assert problems(rule["expr"], known) == [], name
        assert rule["labels"]["severity"] in ("warning", "critical")


def test_the_check_catches_a_wrong_name_or_label() -> None:
    known = exported()
    assert problems("increase(kustos_rotation_failures_total[5m]) > 0", known) == [
        "unknown metric kustos_rotation_failures_total"
    ]
    assert problems("sum by (secret) (kustos_rotations_total)", known) == ["unknown label secret"]
    assert problems("up == 0", known) == ["no kustos metric"]


def test_the_chart_ships_the_same_rules() -> None:
    text = CHART.read_text()
    assert text.startswith("{{- if .Values.metrics.prometheusRule.enabled }}")
    # Prometheus's own {{ $value }} templates are escaped for Helm as {{`...`}}.
    body = re.sub(r"\{\{`(.*?)`\}\}", r"\1", text[text.index("spec:") : text.rindex("{{- end")])
    chart_spec = yaml.safe_load(body)["spec"]
    assert chart_spec == yaml.safe_load(COMPONENT.read_text())["spec"]
