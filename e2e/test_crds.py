"""CRDs on a real API server: structural schemas, defaults, CEL rules, status, printer columns."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from kubernetes.aio import client
from kubernetes.aio.client.exceptions import ApiException
from kubernetes.client.exceptions import ApiException as SyncApiException

from e2e.helpers import (
    DATASET_GROUP,
    DATASET_PLURAL,
    DATASET_VERSION,
    REPO,
    custom_object,
    dataset,
    error_message,
    wire,
)
from modelfs.testing.pytest_plugin import InstallCrds, load_yaml_documents
from tests.strategies import Refused, hostile_bodies, refused_values

pytestmark = pytest.mark.e2e
CONFIG_CRDS = REPO / "config" / "crd" / "bases"


class Datasets:
    """Dataset calls in one namespace."""

    def __init__(self, api: client.ApiClient, namespace: str) -> None:
        self.api = client.CustomObjectsApi(api)
        self.namespace = namespace
        self.where = (DATASET_GROUP, DATASET_VERSION, namespace, DATASET_PLURAL)

    async def create(self, body: dict[str, Any]) -> dict[str, Any]:
        return custom_object(await self.api.create_namespaced_custom_object(*self.where, body))

    async def get(self, name: str) -> dict[str, Any]:
        return custom_object(await self.api.get_namespaced_custom_object(*self.where, name))

    async def merge(self, name: str, patch: dict[str, Any], status: bool = False) -> dict[str, Any]:
        call = (
            self.api.patch_namespaced_custom_object_status
            if status
            else self.api.patch_namespaced_custom_object
        )
        return custom_object(
            await call(*self.where, name, patch, _content_type="application/merge-patch+json")
        )


@pytest.fixture
async def datasets(dataset_crd: str, k8s_api: client.ApiClient, k8s_namespace: str) -> Datasets:
    return Datasets(k8s_api, k8s_namespace)


async def test_dataset_crd_is_established(dataset_crd: str, k8s_api: client.ApiClient) -> None:
    crd = await client.ApiextensionsV1Api(k8s_api).read_custom_resource_definition(dataset_crd)
    assert dataset_crd == "datasets.dataset.baizeai.io"
    assert crd.spec.names.short_names == ["data"]
    assert crd.spec.scope == "Namespaced"
    conditions = {c["type"]: c["status"] for c in wire(crd)["status"]["conditions"]}
    assert conditions["Established"] == "True"
    # a structural schema: the API server would report NonStructuralSchema otherwise
    assert "NonStructuralSchema" not in conditions


async def test_valid_dataset_is_accepted_with_defaults(datasets: Datasets) -> None:
    created = await datasets.create(dataset("gpt2", mountOptions={}))
    spec = created["spec"]
    assert spec["dataSyncRound"] == 1
    assert spec["mountOptions"] == {"path": "/", "mode": "0774", "uid": 1000, "gid": 1000}
    assert "status" not in created  # the status subresource: create ignores status


async def test_raising_data_sync_round_by_two_is_rejected(datasets: Datasets) -> None:
    await datasets.create(dataset("rounds"))
    with pytest.raises(ApiException) as raised:
        await datasets.merge("rounds", {"spec": {"dataSyncRound": 3}})
    assert raised.value.status == 422
    assert "dataSyncRound can only be incremented by 1" in error_message(raised.value)
    raised_once = await datasets.merge("rounds", {"spec": {"dataSyncRound": 2}})
    assert raised_once["spec"]["dataSyncRound"] == 2
    with pytest.raises(ApiException) as lowered:
        await datasets.merge("rounds", {"spec": {"dataSyncRound": 0}})
    assert "dataSyncRound can only be incremented by 1" in error_message(lowered.value)


@pytest.mark.parametrize(
    ("field", "value"), [("uri", "huggingface://org/other"), ("type", "MODEL_SCOPE")]
)
async def test_source_is_immutable(datasets: Datasets, field: str, value: str) -> None:
    await datasets.create(dataset("immutable"))
    with pytest.raises(ApiException) as raised:
        await datasets.merge("immutable", {"spec": {"source": {field: value}}})
    assert raised.value.status == 422
    message = error_message(raised.value)
    assert f"spec.source.{field}" in message
    assert "Value is immutable" in message


@pytest.fixture
def test_crd_only(dataset_controller: str) -> None:
    """The rule checked is one of the project's test CRD (the fake's), which the Dataset CRD of
    BaizeAI/dataset v0.1.6 (installed with `--dataset-controller=real`) does not have."""
    if dataset_controller != "fake":
        pytest.skip(
            "a rule of the fake's test CRD, not of the module's (--dataset-controller=fake)"
        )


@pytest.mark.usefixtures("test_crd_only")
async def test_claim_template_and_claim_ref_are_exclusive(datasets: Datasets) -> None:
    both = dataset(
        "both",
        volumeClaimRef={"name": "pvc"},
        volumeClaimTemplate={"spec": {"accessModes": ["ReadWriteMany"]}},
    )
    with pytest.raises(ApiException) as raised:
        await datasets.create(both)
    assert raised.value.status == 422
    assert "volumeClaimTemplate and volumeClaimRef are mutually exclusive" in error_message(
        raised.value
    )
    template_only = dataset(
        "template", volumeClaimTemplate={"spec": {"accessModes": ["ReadWriteMany"]}}
    )
    created = await datasets.create(template_only)
    # the template body is kept as given (x-kubernetes-preserve-unknown-fields)
    assert created["spec"]["volumeClaimTemplate"]["spec"]["accessModes"] == ["ReadWriteMany"]


async def test_enum_and_required_fields_are_enforced(datasets: Datasets) -> None:
    bad_type = dataset("badtype")
    bad_type["spec"]["source"]["type"] = "FTP"
    with pytest.raises(ApiException) as raised:
        await datasets.create(bad_type)
    assert 'Unsupported value: "FTP"' in error_message(raised.value)
    no_uri = dataset("nouri")
    del no_uri["spec"]["source"]["uri"]
    with pytest.raises(ApiException) as missing:
        await datasets.create(no_uri)
    assert "spec.source.uri: Required value" in error_message(missing.value)


async def test_status_subresource(datasets: Datasets, dataset_controller: str) -> None:
    await datasets.create(dataset("status"))
    # a main-resource write ignores status ...
    ignored = await datasets.merge("status", {"status": {"phase": "READY"}})
    assert "status" not in ignored
    # ... the status subresource takes it, with defaults (and enums) applied
    updated = await datasets.merge("status", {"status": {"pvcName": "status"}}, status=True)
    assert updated["status"] == {"pvcName": "status", "phase": "PENDING"}
    if dataset_controller != "fake":
        return  # the module's CRD (v0.1.6) has no enum on status.phase; the test CRD has
    with pytest.raises(ApiException) as raised:
        await datasets.merge("status", {"status": {"phase": "DONE"}}, status=True)
    assert 'Unsupported value: "DONE"' in error_message(raised.value)


async def test_printer_columns(datasets: Datasets, k8s_kubeconfig: Path, kubectl: str) -> None:
    await datasets.create(dataset("printed"))
    await datasets.merge("printed", {"status": {"phase": "READY"}}, status=True)
    process = await asyncio.create_subprocess_exec(
        kubectl,
        *("--kubeconfig", str(k8s_kubeconfig), "-n", datasets.namespace, "get", "data"),
        stdout=asyncio.subprocess.PIPE,
    )
    stdout, _ = await process.communicate()
    assert process.returncode == 0
    out = stdout.decode().split("\n")
    # the CRD's columns replace the default ones (AGE included)
    assert out[0].split() == ["NAME", "TYPE", "URI", "PHASE"]
    assert out[1].split() == ["printed", "HUGGING_FACE", "huggingface://org/model", "READY"]


async def test_project_crds_install(k8s_install_crds: InstallCrds) -> None:
    files = sorted(CONFIG_CRDS.glob("*.yaml")) if CONFIG_CRDS.is_dir() else []
    if not files:
        pytest.skip(f"no CRDs in {CONFIG_CRDS.relative_to(REPO)} yet (run `make manifests`)")
    expected = {
        d["metadata"]["name"]
        for d in load_yaml_documents(*files)
        if d.get("kind") == "CustomResourceDefinition"
    }
    assert expected, f"{CONFIG_CRDS} holds no CustomResourceDefinition"
    assert set(await k8s_install_crds(*files)) == expected


# ---------------------------------------------------------------------------- modelfs admission
# The rules of api/v1/rules.py on the real API server, through raw API calls (no kubectl, so no
# client-side validation): each refused value gets HTTP 422 naming its field, drawn from the same
# strategies as the pure test that resolution refuses them too (tests/test_admission_rules.py).

PLURALS = {
    "source": "modelsources",
    "model": "models",
    "sync": "modelsyncs",
    "reference": "modelreferences",
}


@pytest.fixture
async def modelfs_namespace(k8s_install_crds: InstallCrds, k8s_namespace: str) -> str:
    await k8s_install_crds(*sorted(CONFIG_CRDS.glob("*.yaml")))
    return k8s_namespace


def manifests(bodies: dict[str, Any], namespace: str) -> dict[str, dict[str, Any]]:
    """The hostile bodies as API objects in `namespace`."""
    kinds = {"source": "ModelSource", "model": "Model", "sync": "ModelSync"}
    kinds["reference"] = "ModelReference"
    out = {}
    for target, body in bodies.items():
        meta = {"name": body["metadata"]["name"], "namespace": namespace}
        out[target] = {
            "apiVersion": "model.samzong.dev/v1",
            "kind": kinds[target],
            "metadata": meta,
            "spec": body["spec"],
        }
    return out


def sync_api(kubeconfig: Path) -> Any:
    from kubernetes import client as sync_client
    from kubernetes import config as sync_config

    api = sync_config.new_client_from_config(str(kubeconfig))  # type: ignore[no-untyped-call]
    return sync_client.CustomObjectsApi(api)


def dotted(path: str) -> str:
    """`a[key].b` as `a.key.b` (list indexes stay `[0]`)."""
    return re.sub(r"(?<=\w)\[([^\][0-9][^\][]*)\]", r".\1", path)


def dry_run_create(api: Any, namespace: str, target: str, body: dict[str, Any]) -> None:
    api.create_namespaced_custom_object(
        "model.samzong.dev", "v1", namespace, PLURALS[target], body, dry_run="All"
    )


async def test_the_hostile_bodies_are_accepted(
    modelfs_namespace: str, k8s_kubeconfig: Path
) -> None:
    api = sync_api(k8s_kubeconfig)
    bodies = manifests(hostile_bodies(), modelfs_namespace)
    # values at the edges of each rule, and non-ASCII that is no control or format character
    bodies["source"]["spec"]["config"] = {"include": "💥💥", "exclude": "日本語*", "revision": "v1"}
    bodies["source"]["spec"]["secretRef"] = "a." + "b" * 250
    bodies["model"]["spec"]["storage"] = {"size": "1Pi", "storageClassName": "fast.ssd"}
    bodies["model"]["spec"]["share"] = {"namespaceSelector": EVERY_NAMESPACE}
    # 24h and 0.036 ns: Go (and resolution) cut the fraction to whole nanoseconds
    bodies["sync"]["spec"]["retry"] = {"backoff": "24.00000000000001h"}
    bodies["sync"]["spec"]["schedule"] = {"interval": "8760h"}
    for target, body in bodies.items():
        dry_run_create(api, modelfs_namespace, target, body)


EVERY_NAMESPACE = {
    "matchExpressions": [{"key": "kubernetes.io/metadata.name", "operator": "Exists"}]
}


@settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(case=refused_values)
def test_every_refused_value_gets_422_naming_its_field(
    modelfs_namespace: str, k8s_kubeconfig: Path, case: Refused
) -> None:
    api = sync_api(k8s_kubeconfig)
    bodies = manifests(case.apply(hostile_bodies()), modelfs_namespace)
    with pytest.raises(SyncApiException) as raised:
        dry_run_create(api, modelfs_namespace, case.target, bodies[case.target])
    assert raised.value.status == 422, raised.value.body
    message = error_message(raised.value)
    # CEL names a map key `[key]`, the schema's own checks (maxLength) `.key`.
    assert f"{dotted(case.crd_field)}:" in dotted(message), (case, message)


@pytest.mark.parametrize(
    ("target", "spec", "field", "words"),
    [
        ("sync", {"retry": {"backoff": "100000000h"}}, "spec.retry.backoff", "from 1s to 24h"),
        ("sync", {"retry": {"backoff": "2562048h"}}, "spec.retry.backoff", "from 1s to 24h"),
        ("sync", {"retry": {"backoff": "24.0000000001h"}}, "spec.retry.backoff", "to 24h"),
        ("source", {"secretRef": "../x"}, "spec.secretRef", "DNS subdomain"),
        ("source", {"config": {"include": "💥\u202e"}}, "spec.config[include]", "U+202E"),
        ("source", {"config": {"include": ""}}, "spec.config[include]", "must not be empty"),
        ("source", {"config": {"include": "-rf"}}, "spec.config[include]", "start with '-'"),
        ("model", {"storage": {"size": "0"}}, "spec.storage.size", "greater than 0"),
        (
            "model",
            {"share": {"namespaceSelector": {"matchLabel": {"team": "b"}}}},
            "spec.share.namespaceSelector",
            "operator: Exists",
        ),
        (
            "reference",
            {"modelRef": {"namespace": "Team_B", "name": "mdl"}},
            "spec.modelRef.namespace",
            "DNS label",
        ),
    ],
)
async def test_the_reported_values_are_refused_with_what_is_allowed(
    modelfs_namespace: str,
    k8s_api: client.ApiClient,
    target: str,
    spec: dict[str, Any],
    field: str,
    words: str,
) -> None:
    """The values issue 12 found accepted, sent raw (a typo such as `matchLabel` is pruned by
    the API server, not refused by it, so only the empty selector's rule can catch it)."""
    body = manifests(hostile_bodies(), modelfs_namespace)[target]
    body["spec"].update(spec)
    with pytest.raises(ApiException) as raised:
        await client.CustomObjectsApi(k8s_api).create_namespaced_custom_object(
            "model.samzong.dev", "v1", modelfs_namespace, PLURALS[target], body
        )
    assert raised.value.status == 422
    message = error_message(raised.value)
    assert f"{field}:" in message and words in message, message


async def test_an_emoji_option_round_trips_through_the_dataset_apply(
    dataset_crd: str, k8s_api: client.ApiClient, k8s_namespace: str
) -> None:
    """Issue 12 defect 3: the apply patch is YAML, which has no JSON surrogate pairs."""
    from modelfs.pkg.dataset.client import APPLY_PATCH, DatasetClient
    from modelfs.pkg.kube import ApiError

    values = {"include": "💥💥", "exclude": "é\u2028x\x7f", "revision": 'a\\ud83d"q'}
    manifest = dataset("emoji")
    manifest["metadata"]["namespace"] = k8s_namespace
    manifest["spec"]["source"]["options"] = values
    datasets = DatasetClient(k8s_api)
    # What the generated client sends for a dict (JSON with surrogate pairs) is refused.
    with pytest.raises(ApiError):
        await datasets._patch(
            k8s_namespace, "emoji", manifest, APPLY_PATCH, field_manager="modelfs", force=True
        )
    stored = await datasets.apply_manifest(manifest)
    assert stored["spec"]["source"]["options"] == values
    again = await Datasets(k8s_api, k8s_namespace).get("emoji")
    assert again["spec"]["source"]["options"] == values
