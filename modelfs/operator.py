"""The operator: kopf settings, the handler registration, and `modelfs run`.

Registration is kept here, in one place, so the controllers stay plain functions: importing
`controllers` registers nothing.
"""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Any

import kopf
from kubernetes.aio import config as aio_config
from kubernetes.aio.client import ApiClient, Configuration
from prometheus_client import start_http_server

from api.v1 import GROUP, VERSION
from controllers import model, modelreference, modelsource, modelsync
from controllers.resync import resync_forever
from controllers.runtime import Runtime, snapshot
from pkg.dataset import DATASET_GROUP, DATASET_PLURAL, DATASET_VERSION, MANAGED_BY, MANAGED_BY_LABEL
from pkg.dataset.client import DatasetClient
from pkg.kube import ObjectClient

FINALIZER = f"{GROUP}/finalizer"
ANNOTATION_PREFIX = GROUP

logger = logging.getLogger("modelfs.operator")

# ----------------------------------------------------------------------------- indexes


def by_name(body: kopf.Body, **_: Any) -> dict[tuple[str, str], dict[str, Any]]:
    return {(body.metadata.namespace or "", body.metadata.name or ""): snapshot(body)}


def namespace_summary(body: kopf.Body, **_: Any) -> dict[str, dict[str, Any]]:
    """Per namespace: its labels (for sharing) and whether it is being deleted."""
    terminating = bool(body.metadata.get("deletionTimestamp")) or (
        body.get("status", {}).get("phase") == "Terminating"
    )
    return {
        body.metadata.name or "": {
            "labels": dict(body.metadata.labels or {}),
            "terminating": terminating,
        }
    }


def model_by_source(body: kopf.Body, spec: kopf.Spec, **_: Any) -> dict[tuple[str, str], str]:
    return {
        (body.metadata.namespace or "", str(spec.get("sourceRef", ""))): body.metadata.name or ""
    }


def modelreference_by_model(
    body: kopf.Body, spec: kopf.Spec, **_: Any
) -> dict[tuple[str, str], tuple[str, str]]:
    target = spec.get("modelRef") or {}
    key = (str(target.get("namespace", "")), str(target.get("name", "")))
    return {key: (body.metadata.namespace or "", body.metadata.name or "")}


def modelsync_by_model(body: kopf.Body, spec: kopf.Spec, **_: Any) -> dict[tuple[str, str], str]:
    return {
        (body.metadata.namespace or "", str(spec.get("modelRef", ""))): body.metadata.name or ""
    }


def deleted(event: kopf.RawEvent, **_: Any) -> bool:
    """Deletions are seen as watch events: no finalizer needed, none added."""
    return event.get("type") == "DELETED"


def retains(spec: kopf.Spec, **_: Any) -> bool:
    return spec.get("deletionPolicy") == "Retain"


def register(registry: kopf.OperatorRegistry) -> kopf.OperatorRegistry:
    """Every handler of the operator, on `registry`."""
    ours: dict[str, Any] = {"group": GROUP, "version": VERSION, "registry": registry}
    datasets: dict[str, Any] = {
        "group": DATASET_GROUP,
        "version": DATASET_VERSION,
        "plural": DATASET_PLURAL,
        "registry": registry,
        "labels": {MANAGED_BY_LABEL: MANAGED_BY},
    }
    kopf.index("", "v1", "namespaces", id="namespace_index", registry=registry)(namespace_summary)
    kopf.index(plural="modelsources", id="modelsource_index", **ours)(by_name)
    kopf.index(plural="models", id="model_index", **ours)(by_name)
    kopf.index(plural="models", id="model_by_source_index", **ours)(model_by_source)
    kopf.index(plural="modelsyncs", id="modelsync_index", **ours)(by_name)
    kopf.index(plural="modelsyncs", id="modelsync_by_model_index", **ours)(modelsync_by_model)
    kopf.index(plural="modelreferences", id="modelreference_index", **ours)(by_name)
    kopf.index(plural="modelreferences", id="modelreference_by_model_index", **ours)(
        modelreference_by_model
    )
    # Every Dataset, not only modelfs's: a name taken by someone else's Dataset must be seen.
    kopf.index(id="dataset_index", **{**datasets, "labels": None})(by_name)

    for plural, changed in (
        ("modelsources", modelsource.modelsource_changed),
        ("models", model.model_changed),
        ("modelsyncs", modelsync.modelsync_changed),
        ("modelreferences", modelreference.modelreference_changed),
    ):
        kind = plural.removesuffix("s")
        kopf.on.create(plural=plural, id=f"{kind}_create", **ours)(changed)
        kopf.on.update(plural=plural, id=f"{kind}_update", **ours)(changed)
        kopf.on.resume(plural=plural, id=f"{kind}_resume", **ours)(changed)

    for plural, handler in (
        ("modelsources", modelsource.modelsource_deleted),
        ("models", model.model_deleted),
        ("modelsyncs", modelsync.modelsync_deleted),
        ("modelreferences", modelreference.modelreference_deleted),
    ):
        kind = plural.removesuffix("s")
        kopf.on.event(plural=plural, id=f"{kind}_delete", when=deleted, **ours)(handler)
    kopf.on.delete(plural="modelsyncs", id="modelsync_retain", when=retains, **ours)(
        modelsync.modelsync_retain
    )
    kopf.on.event(id="dataset_event", **datasets)(modelsync.dataset_event)
    kopf.on.event("", "v1", "namespaces", id="namespace_event", registry=registry)(
        modelreference.namespace_event
    )
    kopf.on.login(registry=registry)(login)
    kopf.on.startup(registry=registry)(startup)
    kopf.on.cleanup(registry=registry)(cleanup)
    return registry


# ----------------------------------------------------------------------------- lifecycle


def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
    """kopf's credentials: the in-cluster ServiceAccount, else $KUBECONFIG / ~/.kube/config."""
    return kopf.login_with_service_account(**kwargs) or kopf.login_with_kubeconfig(**kwargs)


async def new_api_client() -> ApiClient:
    """A client from $KUBECONFIG (or ~/.kube/config), or the in-cluster ServiceAccount."""
    configuration = Configuration()
    loader: Any = aio_config  # the client's config loaders are untyped
    if os.environ.get("KUBERNETES_SERVICE_HOST") and not os.environ.get("KUBECONFIG"):
        loader.load_incluster_config(client_configuration=configuration)
    else:
        await loader.load_kube_config(
            config_file=os.environ.get("KUBECONFIG"), client_configuration=configuration
        )
    return ApiClient(configuration)


def configure_settings(settings: kopf.OperatorSettings) -> None:
    # kopf bookkeeping lives in annotations of modelfs's own objects, under modelfs's own names;
    # never on Datasets (the Dataset operator copies annotations onto PVCs and Jobs).
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(
        prefix=ANNOTATION_PREFIX
    )
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=ANNOTATION_PREFIX, key="last-handled-configuration"
    )
    settings.persistence.finalizer = FINALIZER
    # Only warnings and errors of kopf itself become Events; modelfs posts its own decisions.
    settings.posting.level = logging.WARNING
    settings.watching.server_timeout = 270
    settings.watching.client_timeout = 300
    settings.watching.connect_timeout = 30
    settings.watching.reconnect_backoff = 1.0
    settings.networking.request_timeout = 60
    settings.networking.connect_timeout = 30
    settings.execution.max_workers = 20


async def startup(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    configure_settings(settings)
    api = await new_api_client()
    runtime = Runtime(api=api, datasets=DatasetClient(api), objects=ObjectClient(api))
    runtime.first_context = asyncio.get_running_loop().create_future()
    memo.runtime = runtime
    memo.resync = asyncio.create_task(resync_forever(runtime.first_context))
    logger.info("Started modelfs operator")


async def cleanup(memo: kopf.Memo, **_: Any) -> None:
    resync = getattr(memo, "resync", None)
    if resync is not None:
        resync.cancel()
    runtime = getattr(memo, "runtime", None)
    if runtime is not None:
        await runtime.api.close()
    logger.info("Stopped modelfs operator")


def run(
    *,
    namespaces: list[str],
    clusterwide: bool,
    health_port: int,
    metrics_port: int,
    log_format: str,
    verbose: bool = False,
) -> int:
    """Run the operator until SIGINT/SIGTERM."""
    from modelfs.logs import configure

    configure(log_format, verbose)
    if metrics_port:
        start_http_server(metrics_port)
    registry = register(kopf.OperatorRegistry())
    liveness = f"http://0.0.0.0:{health_port}/healthz" if health_port else None
    asyncio.run(
        kopf.operator(
            registry=registry,
            clusterwide=clusterwide,
            namespaces=namespaces,
            standalone=True,
            liveness_endpoint=liveness,
            memo=kopf.Memo(),
        )
    )
    return 0
