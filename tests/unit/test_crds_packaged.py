"""The CRDs ship inside the package: `kustos crds` prints exactly the repository's crds/."""

from __future__ import annotations

from pathlib import Path

import yaml
from click.testing import CliRunner

from kustos.cli.main import cli
from kustos.kube.crds import crd_documents

CRDS = Path(__file__).resolve().parents[2] / "crds"


def _repo_crds() -> list[dict[str, object]]:
    return [
        yaml.safe_load(p.read_text())
        for p in sorted(CRDS.glob("*.yaml"))
        if p.name != "kustomization.yaml"
    ]


def test_the_package_holds_every_crd_of_the_repository() -> None:
    docs = crd_documents()
    assert docs == _repo_crds()
    assert {d["spec"]["names"]["kind"] for d in docs} >= {
        "ManagedSecret",
        "SecretAccessPolicy",
        "ClusterSecretAccessPolicy",
    }


def test_kustos_crds_prints_them_as_one_yaml_stream() -> None:
    result = CliRunner().invoke(cli, ["crds"])
    assert result.exit_code == 0, result.output
    printed = [d for d in yaml.safe_load_all(result.output) if d]
    assert printed == _repo_crds()


def test_the_chart_ships_the_same_crds() -> None:
    chart = CRDS.parent / "charts" / "kustos" / "crds"
    # make chart-crds copies crds/ into the chart (helm installs CRDs from its crds/ folder).
    assert sorted(p.name for p in chart.glob("*.yaml")) == sorted(
        p.name for p in CRDS.glob("*.yaml") if p.name != "kustomization.yaml"
    )
    for p in chart.glob("*.yaml"):
        assert p.read_text() == (CRDS / p.name).read_text(), (
            f"charts/kustos/crds/{p.name} differs from crds/: run make chart-crds"
        )
