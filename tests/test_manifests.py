"""The CRDs in config/ (and the chart's crds/) are generated from api/v1, structural, and up to
date, as is everything else `modelfs manifests` writes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from modelfs.api.v1 import KINDS
from modelfs.cli import main
from modelfs.manifests import crd, render, render_chart

ROOT = Path(__file__).resolve().parents[1]
FORBIDDEN = {"$ref", "$defs", "title", "anyOf", "allOf", "oneOf", "propertyNames", "const"}


def walk(schema: dict[str, Any], path: str = "") -> list[tuple[str, dict[str, Any]]]:
    found = [(path, schema)]
    for name, prop in schema.get("properties", {}).items():
        found += walk(prop, f"{path}.{name}")
    if isinstance(schema.get("items"), dict):
        found += walk(schema["items"], f"{path}[]")
    if isinstance(schema.get("additionalProperties"), dict):
        found += walk(schema["additionalProperties"], f"{path}{{}}")
    return found


def test_config_is_up_to_date(tmp_path: Path) -> None:
    assert main(["manifests", "--output", str(tmp_path / "config")]) == 0
    generated = [("config", relative) for relative in render()]
    generated += [("charts/modelfs", relative) for relative in render_chart()]
    for folder, relative in generated:
        committed = ROOT / folder / relative
        assert committed.exists(), f"{folder}/{relative} is missing: run `make manifests`"
        assert committed.read_text() == (tmp_path / folder / relative).read_text(), (
            f"{folder}/{relative} is stale: run `make manifests` and commit it"
        )


def test_chart_crds_are_config_crds_with_config_default_labels() -> None:
    config, chart = render(), render_chart()
    for kind in KINDS:
        name = f"model.samzong.dev_{kind.plural}.yaml"
        ours = yaml.safe_load(chart[f"crds/{name}"])
        assert ours["metadata"].pop("labels") == {
            "app.kubernetes.io/name": "modelfs",
            "app.kubernetes.io/part-of": "modelfs",
        }
        assert ours == yaml.safe_load(config[f"crd/bases/{name}"])


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.kind_name)
def test_schema_is_structural_and_explained(kind: Any) -> None:
    schema = crd(kind)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    for path, node in walk(schema):
        assert not FORBIDDEN & node.keys(), f"{path} has {FORBIDDEN & node.keys()}"
        assert "type" in node, f"{path} has no type"
        if node.get("additionalProperties") is not None:
            assert isinstance(node["additionalProperties"], dict), path
            assert "properties" not in node, path
        if path and not path.endswith(("{}", "[]")) and path != ".metadata":
            assert node.get("description"), f"{path} has no description for kubectl explain"
        assert node.get("x-kubernetes-preserve-unknown-fields") is None, path


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.kind_name)
def test_names_columns_and_subresources(kind: Any) -> None:
    spec = crd(kind)["spec"]
    assert spec["group"] == "model.samzong.dev" and spec["scope"] == "Namespaced"
    assert spec["names"]["categories"] == ["modelfs"]
    assert spec["names"]["shortNames"] == kind.short_names
    version = spec["versions"][0]
    assert version["name"] == "v1" and version["subresources"] == {"status": {}}
    columns = {c["name"] for c in version["additionalPrinterColumns"]}
    assert "Age" in columns and ({"Phase", "Ready"} & columns)


def rules(kind: Any) -> dict[str, list[str]]:
    schema = crd(kind)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return {
        path: [r["rule"] for r in node["x-kubernetes-validations"]]
        for path, node in walk(schema)
        if "x-kubernetes-validations" in node
    }


def test_cel_rules_cover_what_admission_can_check() -> None:
    from modelfs.api.v1 import Model, ModelReference, ModelSource, ModelSync

    sync_rules = rules(ModelSync)
    assert sync_rules[".spec.modelRef"][0] == "self == oldSelf"
    assert "matches" in sync_rules[".spec.modelRef"][1]  # a DNS subdomain
    assert sync_rules[".spec.version"][0] == "self == oldSelf"
    assert "matches" in sync_rules[".spec.version"][1]  # only a version name can name a version
    assert "duration('24h')" in sync_rules[".spec.retry.backoff"][0]
    assert "duration('8760h')" in sync_rules[".spec.schedule.interval"][0]
    model_rules = rules(Model)
    assert model_rules[".spec.versionConfigs{}.repo"][0] == "self == oldSelf"
    assert any("matches" in r for r in model_rules[".spec.versionConfigs"])
    assert any("\\\\s" in r for r in model_rules[".spec.versionConfigs{}.repoConfig"])
    assert any("\\\\s" in r for r in rules(ModelSource)[".spec.config"])
    assert any("startsWith('-')" in r for r in model_rules[".spec.versionConfigs{}.repoConfig{}"])
    assert any("p{Cf}" in r for r in rules(ModelSource)[".spec.config{}"])
    assert any("isQuantity" in r for r in model_rules[".spec.storage.size"])
    assert any("size(self.matchLabels)" in r for r in model_rules[".spec.share.namespaceSelector"])
    assert any("matches" in r for r in rules(ModelSource)[".spec.secretRef"])
    assert rules(ModelReference)[".spec.modelRef"] == ["self == oldSelf"]
    assert any("matches" in r for r in rules(ModelReference)[".spec.modelRef.namespace"])
    assert any("matches" in r for r in rules(ModelReference)[".spec.version"])
    sync_round = crd(ModelSync)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    assert sync_round["properties"]["spec"]["properties"]["syncRound"]["minimum"] == 1


def test_generated_files_parse_as_yaml() -> None:
    for content in render().values():
        assert all(yaml.safe_load_all(content))
