"""Server-side apply, garbage collection and namespace deletion on the local control plane."""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes.aio import client
from kubernetes.aio.client.exceptions import ApiException

from e2e.helpers import DATASET_GROUP, DATASET_PLURAL, DATASET_VERSION, dataset, eventually, wire
from modelfs.testing.pytest_plugin import apply_custom_object

pytestmark = pytest.mark.e2e
APPLY = "application/apply-patch+yaml"


def config_map(name: str, data: dict[str, str], **metadata: Any) -> client.V1ConfigMap:
    return client.V1ConfigMap.model_validate(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": name, **metadata},
            "data": data,
        }
    )


async def test_server_side_apply_twice_is_a_no_op(
    k8s_api: client.ApiClient, k8s_namespace: str
) -> None:
    core = client.CoreV1Api(k8s_api)
    body = config_map("applied", {"model": "gpt2"})

    async def apply(manifest: client.V1ConfigMap, manager: str, force: bool = False) -> Any:
        return await core.patch_namespaced_config_map(
            "applied",
            k8s_namespace,
            manifest,
            field_manager=manager,
            force=force,
            _content_type=APPLY,
        )

    first = await apply(body, "e2e")
    second = await apply(body, "e2e")
    assert second.metadata.resource_version == first.metadata.resource_version
    assert [m.manager for m in second.metadata.managed_fields] == ["e2e"]
    changed = await apply(config_map("applied", {"model": "gpt2-xl"}), "e2e")
    assert changed.metadata.resource_version != first.metadata.resource_version
    # another manager may not take a field it does not own without force
    with pytest.raises(ApiException) as conflict:
        await apply(config_map("applied", {"model": "other"}), "intruder")
    assert conflict.value.status == 409


async def test_server_side_apply_of_a_custom_resource_is_a_no_op(
    dataset_crd: str, k8s_api: client.ApiClient, k8s_namespace: str
) -> None:
    body = dataset("applied", mountOptions={"uid": 1001})
    body["metadata"]["namespace"] = k8s_namespace
    first = await apply_custom_object(k8s_api, body, DATASET_PLURAL, field_manager="e2e")
    second = await apply_custom_object(k8s_api, body, DATASET_PLURAL, field_manager="e2e")
    assert second["metadata"]["resourceVersion"] == first["metadata"]["resourceVersion"]
    assert second["spec"]["mountOptions"]["uid"] == 1001
    assert second["spec"]["mountOptions"]["gid"] == 1000  # defaulted, not applied


async def test_garbage_collector_deletes_dependents(
    k8s_api: client.ApiClient, k8s_namespace: str
) -> None:
    core = client.CoreV1Api(k8s_api)
    owner = await core.create_namespaced_config_map(
        k8s_namespace, config_map("owner", {"role": "owner"})
    )
    reference = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "name": "owner",
        "uid": wire(owner)["metadata"]["uid"],
    }
    await core.create_namespaced_config_map(
        k8s_namespace, config_map("dependent", {"role": "dependent"}, ownerReferences=[reference])
    )
    await core.create_namespaced_config_map(k8s_namespace, config_map("bystander", {}))
    await core.delete_namespaced_config_map("owner", k8s_namespace)

    async def dependent_gone() -> bool:
        try:
            await core.read_namespaced_config_map("dependent", k8s_namespace)
        except ApiException as error:
            return bool(error.status == 404)
        return False

    await eventually(dependent_gone, within=60, what="garbage collection of the dependent")
    assert (await core.read_namespaced_config_map("bystander", k8s_namespace)).data is None


async def test_foreground_deletion_waits_for_dependents(
    k8s_api: client.ApiClient, k8s_namespace: str
) -> None:
    core = client.CoreV1Api(k8s_api)
    owner = await core.create_namespaced_config_map(k8s_namespace, config_map("fg-owner", {}))
    reference = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "name": "fg-owner",
        "uid": wire(owner)["metadata"]["uid"],
        "blockOwnerDeletion": True,
    }
    await core.create_namespaced_config_map(
        k8s_namespace, config_map("fg-dependent", {}, ownerReferences=[reference])
    )
    await core.delete_namespaced_config_map(
        "fg-owner", k8s_namespace, propagation_policy="Foreground"
    )

    async def both_gone() -> bool:
        listed = await core.list_namespaced_config_map(k8s_namespace)
        names = {wire(c)["metadata"]["name"] for c in listed.items}
        return not names & {"fg-owner", "fg-dependent"}

    await eventually(both_gone, within=60, what="foreground deletion")


async def test_namespace_deletion_completes(dataset_crd: str, k8s_api: client.ApiClient) -> None:
    core = client.CoreV1Api(k8s_api)
    name = "e2e-ns-deletion"
    await core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    await core.create_namespaced_config_map(name, config_map("cm", {"a": "b"}))
    custom = client.CustomObjectsApi(k8s_api)
    await custom.create_namespaced_custom_object(
        DATASET_GROUP, DATASET_VERSION, name, DATASET_PLURAL, dataset("inside")
    )

    async def service_account_created() -> bool:
        accounts = await core.list_namespaced_service_account(name)
        return "default" in {wire(a)["metadata"]["name"] for a in accounts.items}

    # the serviceaccount controller gives every namespace its "default" account
    await eventually(service_account_created, within=30, what="default ServiceAccount")
    await core.delete_namespace(name)

    async def namespace_gone() -> bool:
        try:
            namespace = await core.read_namespace(name)
        except ApiException as error:
            return bool(error.status == 404)
        assert wire(namespace)["status"]["phase"] == "Terminating"
        return False

    await eventually(namespace_gone, within=90, what="namespace deletion")
