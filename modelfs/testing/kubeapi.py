"""The Kubernetes API calls of the test harness, without pytest (the sandbox, the Dataset
engine, the pod simulator and the fake import them; the pytest plugin re-exports them):
`kubernetes.aio` clients, CRDs installed and awaited, ServiceAccount kubeconfigs, server-side
apply of custom objects."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

if TYPE_CHECKING:
    from kubernetes.aio.client import ApiClient
    from kubernetes.aio.client.configuration import Configuration


CRDS_DIR = Path(__file__).parent / "crds"
DATASET_CRD = CRDS_DIR / "dataset.baizeai.io_datasets.yaml"
FIELD_MANAGER = "modelfs-pytest"

InstallCrds = Callable[..., Awaitable[list[str]]]
SaKubeconfigFactory = Callable[..., Awaitable[Path]]


async def new_api_client(kubeconfig: Path | str, context: str | None = None) -> ApiClient:
    """A `kubernetes.aio` ApiClient for a kubeconfig file (close it with `await c.close()`)."""
    from kubernetes.aio import config

    api: ApiClient = await config.new_client_from_config(  # type: ignore[no-untyped-call]
        config_file=str(kubeconfig), context=context, persist_config=False
    )
    # As the operator's client (`modelfs.operator.new_api_client`): without a proxy variable,
    # the aiohttp session need not scan os.environ for one on every request (which doubled a
    # request's client CPU, and slowed the benchmark's API floor).
    if not any(name.lower().endswith("_proxy") for name in os.environ):
        api.configuration.client_session_kwargs = {"trust_env": False}
    return api


def load_yaml_documents(*paths: Path | str) -> list[dict[str, Any]]:
    """Every non-empty YAML document of the files (directories: their *.yaml, sorted)."""
    documents: list[dict[str, Any]] = []
    for path in map(Path, paths):
        files = sorted(path.glob("*.yaml")) if path.is_dir() else [path]
        for file in files:
            with file.open() as stream:
                documents.extend(d for d in yaml.safe_load_all(stream) if d)
    return documents


async def wait_crd_established(api: ApiClient, name: str, within: float = 60.0) -> None:
    """Wait until CRD `name` has conditions Established=True and NamesAccepted=True; raises
    TimeoutError after `within` seconds."""
    from kubernetes.aio import client

    ext = client.ApiextensionsV1Api(api)
    conditions: dict[str, str] = {}
    try:
        async with asyncio.timeout(within):
            while True:
                crd = await ext.read_custom_resource_definition(name)
                found = (crd.status.conditions if crd.status else None) or []
                conditions = {c.type: c.status for c in found}
                if conditions.get("Established") == conditions.get("NamesAccepted") == "True":
                    return
                await asyncio.sleep(0.1)
    except TimeoutError:
        raise TimeoutError(f"CRD {name} not Established after {within}s: {conditions}") from None


async def install_crds(
    api: ApiClient,
    *paths: Path | str,
    within: float = 60.0,
    field_manager: str = FIELD_MANAGER,
) -> list[str]:
    """Server-side apply every CustomResourceDefinition in the files (forcing conflicts) and
    wait until all are Established. Returns their names."""
    from kubernetes.aio import client

    ext = client.ApiextensionsV1Api(api)
    names = []
    for document in load_yaml_documents(*paths):
        if document.get("kind") != "CustomResourceDefinition":
            continue
        name = document["metadata"]["name"]
        await ext.patch_custom_resource_definition(
            name,
            document,
            field_manager=field_manager,
            force=True,
            _content_type="application/apply-patch+yaml",
        )
        names.append(name)
    await asyncio.gather(*(wait_crd_established(api, n, within) for n in names))
    return names


async def service_account_kubeconfig(
    api: ApiClient,
    namespace: str,
    name: str,
    path: Path,
    *,
    create: bool = True,
    expiration_seconds: int = 3600,
) -> Path:
    """Write a kubeconfig for ServiceAccount `namespace/name` to `path`, authenticated with a
    token from the TokenRequest API, for the same server (and CA) as `api`. Creates the
    account when `create` and it is missing."""
    from kubernetes.aio import client
    from kubernetes.aio.client.exceptions import ApiException

    from modelfs.testing.controlplane import kubeconfig_dict, write_kubeconfig

    core = client.CoreV1Api(api)
    if create:
        body = client.V1ServiceAccount(metadata=client.V1ObjectMeta(name=name))
        try:
            await core.create_namespaced_service_account(namespace, body)
        except ApiException as error:
            if error.status != 409:
                raise
    request = client.AuthenticationV1TokenRequest(
        spec=client.V1TokenRequestSpec(audiences=[], expiration_seconds=expiration_seconds)
    )
    response = await core.create_namespaced_service_account_token(name, namespace, request)
    if response.status is None or not response.status.token:
        raise RuntimeError(f"TokenRequest for {namespace}/{name} returned no token")
    configuration = api.configuration
    ca = _ca_bytes(configuration)
    config = kubeconfig_dict(
        configuration.host,
        ca,
        user=f"system:serviceaccount:{namespace}:{name}",
        token=response.status.token,
        namespace=namespace,
    )
    if not ca:  # a server with a publicly trusted certificate
        del config["clusters"][0]["cluster"]["certificate-authority-data"]
    return write_kubeconfig(path, config)


async def apply_custom_object(
    api: ApiClient,
    body: dict[str, Any],
    plural: str,
    *,
    field_manager: str = FIELD_MANAGER,
    force: bool = False,
) -> dict[str, Any]:
    """Server-side apply a custom object (namespaced when body.metadata.namespace is set) and
    return the object the server answered with.

    `CustomObjectsApi.patch_*_custom_object` returns None when the apply creates the object
    (its response map lacks 201), so this reads the raw response instead.
    """
    from kubernetes.aio import client
    from kubernetes.aio.client.exceptions import ApiException

    custom = client.CustomObjectsApi(api)
    group, _, version = body["apiVersion"].rpartition("/")
    name, namespace = body["metadata"]["name"], body["metadata"].get("namespace")
    options: dict[str, Any] = {
        "field_manager": field_manager,
        "force": force,
        "_content_type": "application/apply-patch+yaml",
    }
    if namespace:
        response = await custom.patch_namespaced_custom_object_without_preload_content(
            group, version, namespace, plural, name, body, **options
        )
    else:
        response = await custom.patch_cluster_custom_object_without_preload_content(
            group, version, plural, name, body, **options
        )
    data = await response.read()
    if not 200 <= response.status < 300:
        raise ApiException(status=response.status, reason=response.reason, body=data.decode())
    result: dict[str, Any] = json.loads(data)
    return result


def _ca_bytes(configuration: Configuration) -> bytes:
    """The CA bundle a client configuration trusts (file or inline data), b"" if none."""
    if configuration.ssl_ca_cert:
        return Path(configuration.ssl_ca_cert).read_bytes()
    data = getattr(configuration, "ca_cert_data", None)
    if data:
        return data.encode() if isinstance(data, str) else bytes(data)
    return b""
