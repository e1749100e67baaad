"""A request the API server refuses for good, on the real API server: the object says so on its
status and in one event, instead of a retry loop visible only in the operator's log."""

from __future__ import annotations

import asyncio
import time

from kubernetes.aio.client import (
    AdmissionregistrationV1Api,
    V1ValidatingAdmissionPolicy,
    V1ValidatingAdmissionPolicyBinding,
)
from kubernetes.aio.client.exceptions import ApiException

from e2e.operator.kube import DATASETS, Kube, condition
from e2e.operator.test_modelsync import model_and_source
from modelfs.api.v1 import reasons

MESSAGE = "Datasets may not be created in this namespace (test policy)"


async def forbid_datasets(kube: Kube, admission: AdmissionregistrationV1Api) -> str:
    """An admission policy that refuses, with 403 Forbidden, every Dataset created in the test
    namespace: what a missing RBAC rule or a site policy does to the operator's apply."""
    name = f"no-datasets-{kube.namespace}"[:63]
    await admission.create_validating_admission_policy(
        V1ValidatingAdmissionPolicy.model_validate(
            {
                "metadata": {"name": name},
                "spec": {
                    "failurePolicy": "Fail",
                    "matchConstraints": {
                        "resourceRules": [
                            {
                                "apiGroups": [DATASETS[0]],
                                "apiVersions": ["*"],
                                "operations": ["CREATE"],
                                "resources": [DATASETS[2]],
                            }
                        ]
                    },
                    "validations": [
                        {"expression": "false", "reason": "Forbidden", "message": MESSAGE}
                    ],
                },
            }
        )
    )
    await admission.create_validating_admission_policy_binding(
        V1ValidatingAdmissionPolicyBinding.model_validate(
            {
                "metadata": {"name": name},
                "spec": {
                    "policyName": name,
                    "validationActions": ["Deny"],
                    "matchResources": {
                        "namespaceSelector": {
                            "matchLabels": {"kubernetes.io/metadata.name": kube.namespace}
                        }
                    },
                },
            }
        )
    )
    # The policy is served once the API server's informer has it: wait until a dry run is refused.
    deadline = time.monotonic() + 30
    while await dry_run_allowed(kube):
        assert time.monotonic() < deadline, "the admission policy never took effect"
        await asyncio.sleep(0.5)
    return name


async def dry_run_allowed(kube: Kube) -> bool:
    probe = {
        "apiVersion": f"{DATASETS[0]}/{DATASETS[1]}",
        "kind": "Dataset",
        "metadata": {"name": "probe"},
        "spec": {"source": {"type": "HTTP", "uri": "https://files.example.com/x/"}},
    }
    try:
        await kube.custom.create_namespaced_custom_object(
            *DATASETS[:2], kube.namespace, DATASETS[2], probe, dry_run="All"
        )
    except ApiException as error:
        assert error.status == 403, error
        return False
    return True


async def until_allowed(kube: Kube) -> None:
    deadline = time.monotonic() + 30
    while not await dry_run_allowed(kube):
        assert time.monotonic() < deadline, "the admission policy was never lifted"
        await asyncio.sleep(0.5)


async def test_a_forbidden_apply_is_shown_on_the_modelsync_until_it_is_allowed(kube: Kube) -> None:
    admission = AdmissionregistrationV1Api(kube.custom.api_client)
    policy = await forbid_datasets(kube, admission)
    try:
        await model_and_source(kube)
        await kube.create("ModelSync", "sync", {"modelRef": "mdl", "version": "v1"})
        sync = await kube.wait_phase("sync", "FAILED")
        ready = condition(sync, "Ready")
        assert (ready["status"], ready["reason"]) == ("False", reasons.API_FORBIDDEN), ready
        assert MESSAGE in ready["message"]
        events = await kube.wait_events("sync", lambda found: bool(found))
        assert [(e.type, e.reason) for e in events] == [("Warning", reasons.API_FORBIDDEN)]
        assert await kube.dataset("mdl-v1") is None
        # Not retried every second: still one event and the same condition a while later.
        await asyncio.sleep(5)
        assert len(await kube.events("sync")) == 1
        assert condition(await kube.get("ModelSync", "sync") or {}, "Ready") == ready
    finally:
        await admission.delete_validating_admission_policy_binding(policy)
        await admission.delete_validating_admission_policy(policy)
    await until_allowed(kube)
    # Allowed again: a change of the object is reconciled at once, not at the longest backoff.
    await kube.patch("ModelSync", "sync", {"metadata": {"labels": {"retry": "now"}}})
    await kube.wait_phase("sync", "READY", within=60)
    assert await kube.dataset("mdl-v1") is not None
