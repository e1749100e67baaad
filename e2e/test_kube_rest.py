"""The operator's own requests (pkg/kube/rest.py: no generated layers) on a real API server:
ObjectClient's status, metadata and Event writes and DatasetClient's apply, get, patch, delete and
orphan give the same results and the same errors (with the server's message) as the generated
client did, with the admin's client certificate, a ServiceAccount's Bearer token and a token
that only the configuration's refresh hook supplies."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes.aio import client

from e2e.helpers import REPO, custom_object, dataset, wire
from modelfs.api.v1 import GROUP, VERSION
from modelfs.pkg.dataset.client import FIELD_MANAGER, DatasetClient
from modelfs.pkg.kube import (
    TRANSIENT_ERRORS,
    ApiError,
    ConflictError,
    InvalidError,
    NotFoundError,
    ObjectClient,
)
from modelfs.pkg.kube.rest import object_path, request
from modelfs.testing.pytest_plugin import InstallCrds, SaKubeconfigFactory, new_api_client

pytestmark = pytest.mark.e2e
SYNCS = "modelsyncs"


@pytest.fixture
async def namespace(k8s_install_crds: InstallCrds, dataset_crd: str, k8s_namespace: str) -> str:
    """A namespace with modelfs's CRDs and the Dataset CRD installed."""
    await k8s_install_crds(*sorted((REPO / "config" / "crd" / "bases").glob("*.yaml")))
    return k8s_namespace


async def create_sync(api: client.ApiClient, namespace: str, name: str) -> dict[str, Any]:
    body = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "ModelSync",
        "metadata": {"name": name},
        "spec": {"modelRef": "mdl", "version": "v1"},
    }
    return custom_object(
        await client.CustomObjectsApi(api).create_namespaced_custom_object(
            GROUP, VERSION, namespace, SYNCS, body
        )
    )


async def read_sync(api: client.ApiClient, namespace: str, name: str) -> dict[str, Any]:
    return custom_object(
        await client.CustomObjectsApi(api).get_namespaced_custom_object(
            GROUP, VERSION, namespace, SYNCS, name
        )
    )


def manifest(namespace: str, name: str, **options: str) -> dict[str, Any]:
    body = dataset(name)
    body["metadata"]["namespace"] = namespace
    if options:
        body["spec"]["source"]["options"] = options
    return body


# --------------------------------------------------------------------------- ObjectClient


async def test_patch_status_merges_and_a_missing_object_is_none(
    k8s_api: client.ApiClient, namespace: str
) -> None:
    await create_sync(k8s_api, namespace, "sync")
    objects = ObjectClient(k8s_api)
    stored = await objects.patch_status(SYNCS, namespace, "sync", {"phase": "PENDING"})
    assert stored is not None
    assert stored["status"]["phase"] == "PENDING"
    assert stored["metadata"]["name"] == "sync"
    # A merge patch: a second field joins the first, and the spec is not the status's to change.
    stored = await objects.patch_status(
        SYNCS, namespace, "sync", {"datasetRound": 2, "phase": "PROCESSING"}
    )
    assert stored is not None
    assert stored["status"]["phase"] == "PROCESSING" and stored["status"]["datasetRound"] == 2
    again = await read_sync(k8s_api, namespace, "sync")
    assert again["status"] == stored["status"]
    assert again["metadata"]["resourceVersion"] == stored["metadata"]["resourceVersion"]
    assert await objects.patch_status(SYNCS, namespace, "gone", {"phase": "PENDING"}) is None
    assert await objects.patch_status(SYNCS, "no-such-ns", "sync", {"phase": "PENDING"}) is None


async def test_an_invalid_status_is_invalid_error_naming_the_field(
    k8s_api: client.ApiClient, namespace: str
) -> None:
    await create_sync(k8s_api, namespace, "sync")
    objects = ObjectClient(k8s_api)
    with pytest.raises(InvalidError) as raised:
        await objects.patch_status(SYNCS, namespace, "sync", {"phase": "DONE"})
    message = str(raised.value)
    assert raised.value.status == 422
    assert message.startswith("422: ") and "status.phase" in message, message
    assert '"READY"' in message, message  # the allowed values, from the server
    # nothing half-written: the status is the API server's default (the CRD's), nothing else
    assert (await read_sync(k8s_api, namespace, "sync"))["status"] == {"phase": "PENDING"}


async def test_patch_metadata_with_a_stale_resource_version_is_a_conflict(
    k8s_api: client.ApiClient, namespace: str
) -> None:
    created = await create_sync(k8s_api, namespace, "sync")
    stale = created["metadata"]["resourceVersion"]
    objects = ObjectClient(k8s_api)
    finalizer = {"metadata": {"finalizers": [f"{GROUP}/test"], "resourceVersion": stale}}
    stored = await objects.patch_metadata(SYNCS, namespace, "sync", finalizer)
    assert stored is not None and stored["metadata"]["finalizers"] == [f"{GROUP}/test"]
    assert stored["metadata"]["resourceVersion"] != stale
    with pytest.raises(ConflictError) as raised:
        await objects.patch_metadata(
            SYNCS, namespace, "sync", {"metadata": {"finalizers": [], "resourceVersion": stale}}
        )
    assert raised.value.status == 409
    assert "the object has been modified" in str(raised.value), raised.value
    assert (await read_sync(k8s_api, namespace, "sync"))["metadata"]["finalizers"] == [
        f"{GROUP}/test"
    ]
    removed = await objects.patch_metadata(
        SYNCS, namespace, "sync", {"metadata": {"finalizers": None}}
    )
    assert removed is not None and "finalizers" not in removed["metadata"]
    assert await objects.patch_metadata(SYNCS, namespace, "gone", {"metadata": {}}) is None


async def test_create_event_posts_a_core_event(k8s_api: client.ApiClient, namespace: str) -> None:
    sync = await create_sync(k8s_api, namespace, "sync")
    await ObjectClient(k8s_api).create_event(sync, "Warning", "Tested", "emoji 💥 and \x7f")
    events = await client.CoreV1Api(k8s_api).list_namespaced_event(namespace)
    (event,) = [e for e in events.items if e.reason == "Tested"]
    assert event.type == "Warning" and event.message == "emoji 💥 and \x7f"
    assert event.involved_object.kind == "ModelSync" and event.involved_object.name == "sync"
    assert event.involved_object.uid == sync["metadata"]["uid"]
    assert wire(event)["source"]["component"] == "modelfs"
    with pytest.raises(NotFoundError) as raised:
        await ObjectClient(k8s_api).create_event(
            {**sync, "metadata": {**sync["metadata"], "namespace": "no-such-ns"}},
            "Normal",
            "X",
            "y",
        )
    assert "404: " in str(raised.value) and "no-such-ns" in str(raised.value)


async def test_secret_keys_are_the_key_names_or_none(
    k8s_api: client.ApiClient, namespace: str
) -> None:
    secret = client.V1Secret(
        metadata=client.V1ObjectMeta(name="creds"),
        string_data={"token": "s3cr3t-value", "user": "u"},
    )
    await client.CoreV1Api(k8s_api).create_namespaced_secret(namespace, secret)
    objects = ObjectClient(k8s_api)
    assert await objects.secret_keys(namespace, "creds") == frozenset({"token", "user"})
    assert await objects.secret_keys(namespace, "absent") is None
    assert await objects.secret_keys(namespace, "..") is None  # never put into a URL
    with pytest.raises(NotFoundError):  # a 404 of the namespace is the same 404: no Secret
        await request(k8s_api, "GET", object_path("", "v1", "secrets", "no-such-ns", "creds"))
    assert await objects.secret_keys("no-such-ns", "creds") is None


# --------------------------------------------------------------------------- DatasetClient


async def test_dataset_apply_get_patch_orphan_delete(
    k8s_api: client.ApiClient, namespace: str
) -> None:
    sync = await create_sync(k8s_api, namespace, "owner")
    datasets = DatasetClient(k8s_api)
    options = {"include": "💥💥", "exclude": "é\u2028x\x7f", "revision": 'a\\ud83d"q'}
    body = manifest(namespace, "data", **options)
    body["metadata"]["ownerReferences"] = [
        {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "ModelSync",
            "name": "owner",
            "uid": sync["metadata"]["uid"],
        }
    ]
    created = await datasets.apply_manifest(body)  # 201: created by the apply
    assert created["spec"]["source"]["options"] == options
    (managed,) = created["metadata"]["managedFields"]
    assert managed["manager"] == FIELD_MANAGER and managed["operation"] == "Apply"
    assert (await datasets.apply_manifest(body))["metadata"]["resourceVersion"] == created[
        "metadata"
    ]["resourceVersion"]  # 200, and nothing changed
    got = await datasets.get(namespace, "data")
    assert got is not None and got["spec"]["source"]["options"] == options
    assert await datasets.get(namespace, "gone") is None
    patched = await datasets.patch(
        namespace, "data", {"spec": {"source": {"options": {"exclude": None}}}}
    )
    assert "exclude" not in patched["spec"]["source"]["options"]
    with pytest.raises(NotFoundError):
        await datasets.patch(namespace, "gone", {"metadata": {}})
    with pytest.raises(NotFoundError):
        await datasets.apply_manifest(manifest("no-such-ns", "data"))
    assert await datasets.orphan(namespace, "data", sync["metadata"]["uid"]) is True
    orphaned = await datasets.get(namespace, "data")
    assert orphaned is not None and not orphaned["metadata"].get("ownerReferences")
    assert await datasets.orphan(namespace, "data", sync["metadata"]["uid"]) is False
    assert await datasets.orphan(namespace, "gone", sync["metadata"]["uid"]) is False
    assert await datasets.delete(namespace, "data") is True
    assert await datasets.delete(namespace, "data") is False
    assert await datasets.get(namespace, "data") is None


async def test_an_invalid_dataset_apply_is_invalid_error(
    k8s_api: client.ApiClient, namespace: str
) -> None:
    body = manifest(namespace, "bad")
    body["spec"]["source"]["type"] = "FTP"
    with pytest.raises(InvalidError) as raised:
        await DatasetClient(k8s_api).apply_manifest(body)
    assert "spec.source.type" in str(raised.value), raised.value
    assert await DatasetClient(k8s_api).get(namespace, "bad") is None


# --------------------------------------------------------------------------- credentials


async def bind(api: client.ApiClient, namespace: str, account: str) -> None:
    """`account` may do anything in `namespace` (cluster-admin, bound in the namespace)."""
    await client.RbacAuthorizationV1Api(api).create_namespaced_role_binding(
        namespace,
        client.V1RoleBinding.model_validate(
            {
                "metadata": {"name": f"{account}-admin"},
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "ClusterRole",
                    "name": "cluster-admin",
                },
                "subjects": [{"kind": "ServiceAccount", "name": account, "namespace": namespace}],
            }
        ),
    )


@pytest.fixture
async def token_api(
    k8s_api: client.ApiClient,
    namespace: str,
    k8s_service_account_kubeconfig: SaKubeconfigFactory,
) -> AsyncIterator[client.ApiClient]:
    """A client of ServiceAccount `operator` (Bearer token over TLS), bound in `namespace`."""
    kubeconfig = await k8s_service_account_kubeconfig(namespace, "operator")
    await bind(k8s_api, namespace, "operator")
    api = await new_api_client(kubeconfig)
    try:
        yield api
    finally:
        await api.close()  # type: ignore[no-untyped-call]


async def test_a_service_account_token_client_writes(
    k8s_api: client.ApiClient, token_api: client.ApiClient, namespace: str
) -> None:
    config = token_api.configuration
    assert config.host.startswith("https://") and config.cert_file is None
    assert str(config.api_key.get("BearerToken", "")).startswith("Bearer ")
    await create_sync(k8s_api, namespace, "sync")
    stored = await ObjectClient(token_api).patch_status(
        SYNCS, namespace, "sync", {"phase": "READY"}
    )
    assert stored is not None and stored["status"]["phase"] == "READY"
    applied = await DatasetClient(token_api).apply_manifest(manifest(namespace, "data"))
    assert applied["metadata"]["name"] == "data"
    # The request is the ServiceAccount's: outside its namespace it is refused, by name.
    with pytest.raises(ApiError) as raised:
        await DatasetClient(token_api).get("default", "data")
    assert type(raised.value) is ApiError and raised.value.status == 403
    assert f"system:serviceaccount:{namespace}:operator" in str(raised.value)
    with pytest.raises(ApiError) as refused:  # a Secret it may not read: said, not None
        await ObjectClient(token_api).secret_keys("default", "creds")
    assert refused.value.status == 403


async def test_the_refresh_hook_supplies_the_token(
    token_api: client.ApiClient, namespace: str
) -> None:
    """An expiring token (in-cluster, exec plugins) is refreshed by the configuration's hook,
    which `auth_settings()` runs before each request: the request must go through it."""
    config = token_api.configuration
    token = config.api_key["BearerToken"]
    config.api_key["BearerToken"] = "Bearer expired"
    calls = []

    def refresh(configuration: Any) -> None:
        calls.append(configuration)
        configuration.api_key["BearerToken"] = token

    config.refresh_api_key_hook = refresh
    path = object_path(GROUP, VERSION, SYNCS, namespace)
    status, listed = await request(token_api, "GET", path)
    assert status == 200 and listed is not None and listed["kind"] == "ModelSyncList"
    assert calls == [config]
    # Without the hook, the expired token is refused.
    config.refresh_api_key_hook = None
    config.api_key["BearerToken"] = "Bearer expired"
    with pytest.raises(ApiError) as raised:
        await request(token_api, "GET", path)
    assert raised.value.status == 401, raised.value
    config.api_key["BearerToken"] = token


async def test_no_answer_is_a_transient_error_not_an_api_error(tmp_path: Path) -> None:
    """A refused connection (kube-apiserver restarting) raises what the queue retries."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    configuration = client.Configuration(host=f"https://127.0.0.1:{port}")
    api = client.ApiClient(configuration)
    try:
        with pytest.raises(TRANSIENT_ERRORS) as raised:
            await ObjectClient(api).patch_status(SYNCS, "ns", "sync", {"phase": "READY"})
        assert not isinstance(raised.value, ApiError)
    finally:
        await api.close()  # type: ignore[no-untyped-call]
