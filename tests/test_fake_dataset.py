"""The fake Dataset controller's pure logic against what docs/dataset-controller.md says of the
real controller (BaizeAI/dataset v0.1.6), no cluster. `e2e/test_conformance.py` checks the
same behaviour against the real controller itself."""

from __future__ import annotations

import asyncio
import copy
import datetime as dt
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from modelfs.testing.fake_dataset import logic
from modelfs.testing.fake_dataset.cli import build_parser, settings_from_args
from modelfs.testing.fake_dataset.controller import SANDBOX_TIMINGS
from modelfs.testing.fake_dataset.logic import (
    FAILED,
    FINALIZER,
    NAME_LABEL,
    PENDING,
    PROCESSING,
    READY,
    JobView,
    Observed,
    SourceObservation,
    Timings,
    reconcile,
)

T0 = dt.datetime(2026, 1, 1, 12, 0, 0, tzinfo=dt.UTC)
ORDER = ["PVC", "ConfigMap", "Job", "JobStatus", "Config"]
MOUNT_DEFAULTS = {"path": "/", "mode": "0774", "uid": 1000, "gid": 1000}


def at(seconds: float) -> dt.datetime:
    return T0 + dt.timedelta(seconds=seconds)


def dataset(
    name: str = "qwen-v1",
    *,
    type_: str = "HUGGING_FACE",
    uri: str = "huggingface://org/model",
    round_: int = 1,
    status: dict[str, Any] | None = None,
    labels: dict[str, str] | None = None,
    annotations: dict[str, str] | None = None,
    finalizers: list[str] | None = None,
    deleting: bool = False,
    namespace: str = "team-a",
    **spec: Any,
) -> dict[str, Any]:
    """A Dataset as the API server stores it (mountOptions defaulted: the real CRD's defaults
    apply once the finalizer Update has written `mountOptions: {}`)."""
    meta: dict[str, Any] = {
        "name": name,
        "namespace": namespace,
        "uid": "0123456789abcdef-uid",
        "resourceVersion": "7",
        "creationTimestamp": logic.rfc3339(T0),
        "finalizers": [FINALIZER] if finalizers is None else finalizers,
    }
    if labels:
        meta["labels"] = labels
    if annotations:
        meta["annotations"] = annotations
    if deleting:
        meta["deletionTimestamp"] = logic.rfc3339(at(100))
    body: dict[str, Any] = {
        "apiVersion": logic.API_VERSION,
        "kind": logic.KIND,
        "metadata": meta,
        "spec": {
            "source": {"type": type_, "uri": uri},
            "dataSyncRound": round_,
            "mountOptions": dict(MOUNT_DEFAULTS),
            **spec,
        },
    }
    if status is not None:
        body["status"] = status
    return body


def server_update(ds: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
    """What the API server stores for the controller's full Update (with the real CRD: the
    claim template's metadata pruned, mountOptions defaulted), and returns."""
    assert body["metadata"]["resourceVersion"] == ds["metadata"]["resourceVersion"]
    stored = copy.deepcopy(ds)
    stored["metadata"]["finalizers"] = body["metadata"].get("finalizers") or []
    spec = copy.deepcopy(body["spec"])
    spec["volumeClaimTemplate"]["metadata"] = {}
    spec["mountOptions"] = {**MOUNT_DEFAULTS, **spec["mountOptions"]}
    spec.pop("resources", None)  # v0.1.6's CRD has no spec.resources
    stored["spec"] = spec
    stored["metadata"]["resourceVersion"] = str(int(ds["metadata"]["resourceVersion"]) + 1)
    return stored


def own_pvc(name: str = "qwen-v1", owner: str = "qwen-v1", **extra: Any) -> dict[str, Any]:
    return {"metadata": {"name": name, "labels": {NAME_LABEL: owner}}, **extra}


def job(name: str, state: str = "running", end: str | None = None) -> JobView:
    return JobView(
        name=name,
        succeeded=state == "succeeded",
        failed=state == "failed",
        start_time=logic.rfc3339(T0) if state != "running" else None,
        completion_time=end if state == "succeeded" else None,
    )


def conditions(status: dict[str, Any]) -> dict[str, tuple[str, str, str]]:
    return {c["type"]: (c["status"], c["reason"], c["message"]) for c in status["conditions"]}


def types(status: dict[str, Any]) -> list[str]:
    return [c["type"] for c in status["conditions"]]


def step(ds: dict[str, Any], obs: Observed, backoff_limit: int = 4) -> logic.Plan:
    """reconcile, as the runtime carries it out: the finalizer Update goes to the "server" and
    the chain resumes with its response; the written status is folded back into the Dataset."""
    plan = reconcile(ds, obs, backoff_limit=backoff_limit)
    if plan.update is not None:
        stored = server_update(ds, plan.update)
        ds.clear()
        ds.update(stored)
        if plan.resume:
            plan = reconcile(ds, obs, backoff_limit=backoff_limit, resumed=True)
    if plan.status_changed:
        ds["status"] = plan.status
    return plan


def job_args(body: dict[str, Any]) -> list[str]:
    args: list[str] = body["spec"]["template"]["spec"]["containers"][0]["args"]
    return args


def created(plan: logic.Plan, kind: str) -> dict[str, Any]:
    (found,) = [o for o in plan.creates if o["kind"] == kind]
    return found


# --------------------------------------------------------------------------- rounds and phases


def test_first_round_no_status_processing_ready_with_the_measured_conditions() -> None:
    ds = dataset(finalizers=[])
    first = reconcile(ds, Observed(now=at(1)))
    # the finalizer comes first, by a full Update; nothing else happens before its response
    assert first.update is not None and first.resume
    assert first.update["metadata"]["finalizers"] == [FINALIZER]
    assert not first.creates and not first.status_changed

    one = "dataset-qwen-v1-round-1"
    plan = step(ds, Observed(now=at(1)))
    assert [o["kind"] for o in plan.creates] == ["PersistentVolumeClaim", "Job"]
    assert plan.started_job == one
    status = ds["status"]
    assert status["phase"] == PROCESSING  # no PENDING, no FAILED before it
    assert status["inProcessing"] is True and status["inProcessingRound"] == 1
    assert status["pvcName"] == "qwen-v1"
    # Config was set before the Update, whose response zeroed it: the order starts at PVC, and
    # the Job the cache has not seen yet is a False JobStatus
    assert types(status) == ["PVC", "ConfigMap", "Job", "JobStatus"]
    assert conditions(status)["JobStatus"] == (
        "False",
        "JobStatusReady",
        f'Job.batch "{one}" not found',
    )
    assert "syncRoundStatuses" not in status
    assert plan.requeue_after == logic.POLL_SECONDS

    second = step(ds, Observed(now=at(2), pvc=own_pvc(), jobs={one: job(one)}))
    assert not second.creates and second.update is None
    assert types(ds["status"]) == ORDER
    assert conditions(ds["status"]) == {t: ("True", f"{t}Ready", "") for t in ORDER}
    assert ds["status"]["phase"] == PROCESSING
    assert ds["status"]["syncRoundStatuses"] == [
        {"round": 1, "jobName": one, "startTime": logic.rfc3339(at(2))}
    ]
    assert second.requeue_after == logic.POLL_SECONDS  # polled: Jobs are not watched

    done = {one: job(one, "succeeded", logic.rfc3339(at(5)))}
    last = step(ds, Observed(now=at(7), pvc=own_pvc(), jobs=done))
    status = ds["status"]
    assert status["phase"] == READY
    assert status["lastSucceedRound"] == 1
    assert "inProcessing" not in status and "inProcessingRound" not in status  # omitempty
    assert status["lastSyncTime"] == logic.rfc3339(at(5))
    assert status["syncRoundStatuses"] == [
        {
            "round": 1,
            "jobName": one,
            "startTime": logic.rfc3339(T0),
            "endTime": logic.rfc3339(at(5)),
            "succeed": True,
        }
    ]
    assert types(status) == ORDER
    assert "observedGeneration" not in str(status)
    assert last.requeue_after is None  # READY is not polled


def test_idle_ready_dataset_plans_nothing() -> None:
    ds = dataset()
    one = "dataset-qwen-v1-round-1"
    step(ds, Observed(now=at(1)))
    step(ds, Observed(now=at(2), pvc=own_pvc(), jobs={one: job(one)}))
    done = {one: job(one, "succeeded", logic.rfc3339(at(5)))}
    step(ds, Observed(now=at(6), pvc=own_pvc(), jobs=done))
    again = reconcile(ds, Observed(now=at(600), pvc=own_pvc(), jobs=done))
    assert not again.status_changed
    assert not again.creates and not again.deletes and again.update is None
    assert again.requeue_after is None


def test_a_ready_dataset_whose_job_is_gone_says_so_in_jobstatus() -> None:
    ds = dataset()
    one = "dataset-qwen-v1-round-1"
    step(ds, Observed(now=at(1)))
    step(ds, Observed(now=at(6), pvc=own_pvc(), jobs={one: job(one, "succeeded", "x")}))
    plan = step(ds, Observed(now=at(7), pvc=own_pvc()))
    assert conditions(plan.status)["JobStatus"] == (
        "False",
        "JobStatusReady",
        f'Job.batch "{one}" not found',
    )
    assert plan.status["phase"] == READY


def test_a_raised_round_shows_a_brief_false_jobstatus_and_never_failed() -> None:
    ds = dataset(finalizers=[])
    one, two = "dataset-qwen-v1-round-1", "dataset-qwen-v1-round-2"
    step(ds, Observed(now=at(1)))
    done = {one: job(one, "succeeded", logic.rfc3339(at(3)))}
    step(ds, Observed(now=at(6), pvc=own_pvc(), jobs=done))
    assert ds["status"]["phase"] == READY
    ds["spec"]["dataSyncRound"] = 2
    raised = step(ds, Observed(now=at(10), pvc=own_pvc(), jobs=done))
    assert raised.update is None  # the finalizer is there: no Update, no reset
    assert [o["metadata"]["name"] for o in raised.creates] == [two]
    assert ds["status"]["phase"] == PROCESSING
    assert types(ds["status"]) == ORDER
    assert conditions(ds["status"])["JobStatus"] == (
        "False",
        "JobStatusReady",
        f'Job.batch "{two}" not found',
    )
    seen = step(ds, Observed(now=at(10.1), pvc=own_pvc(), jobs={**done, two: job(two)}))
    assert not seen.creates
    assert conditions(ds["status"])["JobStatus"] == ("True", "JobStatusReady", "")
    assert ds["status"]["phase"] == PROCESSING
    finished = {**done, two: job(two, "succeeded", logic.rfc3339(at(12)))}
    step(ds, Observed(now=at(15), pvc=own_pvc(), jobs=finished))
    assert ds["status"]["phase"] == READY and ds["status"]["lastSucceedRound"] == 2


def test_a_failed_round_is_failed_with_no_trace_of_why_until_the_round_is_raised() -> None:
    ds = dataset()
    one = "dataset-qwen-v1-round-1"
    step(ds, Observed(now=at(1)))
    failed = {one: job(one, "failed")}
    plan = step(ds, Observed(now=at(3), pvc=own_pvc(), jobs=failed))
    status = ds["status"]
    assert status["phase"] == FAILED
    # no endTime, no succeed, no False condition, no message
    assert status["syncRoundStatuses"] == [
        {"round": 1, "jobName": one, "startTime": logic.rfc3339(at(3))}
    ]
    assert all(c["status"] == "True" and c["message"] == "" for c in status["conditions"])
    assert plan.requeue_after is None
    for later in (10, 100, 10_000):
        again = step(ds, Observed(now=at(later), pvc=own_pvc(), jobs=failed))
        assert not again.creates and not again.status_changed and again.requeue_after is None
    ds["spec"]["dataSyncRound"] = 2
    retry = step(ds, Observed(now=at(20_000), pvc=own_pvc(), jobs=failed))
    assert [o["metadata"]["name"] for o in retry.creates] == ["dataset-qwen-v1-round-2"]
    assert ds["status"]["phase"] == PROCESSING


def test_round_statuses_keep_the_last_five() -> None:
    ds = dataset()
    jobs: dict[str, JobView] = {}
    for round_ in range(1, 8):
        ds["spec"]["dataSyncRound"] = round_
        name = f"dataset-qwen-v1-round-{round_}"
        step(ds, Observed(now=at(round_ * 10), pvc=own_pvc(), jobs=jobs))
        jobs[name] = job(name, "succeeded", logic.rfc3339(at(round_ * 10 + 5)))
        step(ds, Observed(now=at(round_ * 10 + 6), pvc=own_pvc(), jobs=jobs))
    assert [r["round"] for r in ds["status"]["syncRoundStatuses"]] == [3, 4, 5, 6, 7]
    assert ds["status"]["lastSucceedRound"] == 7


def test_raising_the_round_while_a_job_runs_starts_a_second_job() -> None:
    ds = dataset()
    one, two = "dataset-qwen-v1-round-1", "dataset-qwen-v1-round-2"
    step(ds, Observed(now=at(1)))
    step(ds, Observed(now=at(2), pvc=own_pvc(), jobs={one: job(one)}))
    ds["spec"]["dataSyncRound"] = 2
    plan = step(ds, Observed(now=at(3), pvc=own_pvc(), jobs={one: job(one)}))
    assert [o["metadata"]["name"] for o in plan.creates] == [two]
    step(ds, Observed(now=at(4), pvc=own_pvc(), jobs={one: job(one), two: job(two)}))
    rounds = ds["status"]["syncRoundStatuses"]
    assert [r["round"] for r in rounds] == [1, 2]  # overlapping: round 1 never ends
    assert ds["status"]["inProcessingRound"] == 2
    end = logic.rfc3339(at(9))
    step(
        ds,
        Observed(now=at(10), pvc=own_pvc(), jobs={one: job(one, "succeeded", end), two: job(two)}),
    )
    assert ds["status"]["phase"] == PROCESSING  # round 1's Job is never looked at again
    assert "lastSucceedRound" not in ds["status"]


def test_the_jobs_a_reconcile_reads() -> None:
    ds = dataset(round_=3, status={"inProcessingRound": 2, "lastSucceedRound": 1})
    assert logic.jobs_to_read(ds) == [f"dataset-qwen-v1-round-{r}" for r in (1, 2, 3)]
    assert logic.jobs_to_read(dataset()) == ["dataset-qwen-v1-round-1"]


# --------------------------------------------------------------------------- the spec write-back


def test_the_finalizer_update_writes_back_the_go_structs() -> None:
    ds = dataset(
        finalizers=["modelfs/keep"],
        share=False,
        secretRef="hf",
        volumeClaimTemplate={
            "spec": {
                "accessModes": ["ReadWriteMany"],
                "resources": {"requests": {"storage": "1024Mi"}},
            }
        },
    )
    ds["spec"]["source"]["options"] = {}
    del ds["spec"]["mountOptions"]
    plan = reconcile(ds, Observed(now=at(1)))
    assert plan.update is not None
    assert plan.update["metadata"]["finalizers"] == [FINALIZER]  # replaced, not appended
    assert plan.update["metadata"]["resourceVersion"] == "7"  # an Update, guarded
    assert plan.update["spec"] == {
        "source": {"type": "HUGGING_FACE", "uri": "huggingface://org/model"},  # options: {} gone
        "secretRef": "hf",
        "dataSyncRound": 1,
        "mountOptions": {},  # then defaulted by the API server
        "volumeClaimTemplate": {
            "metadata": {"creationTimestamp": None},  # pruned by the CRD
            "spec": {
                "accessModes": ["ReadWriteMany"],
                "resources": {"requests": {"storage": "1Gi"}},
            },
            "status": {},
        },
        "resources": {},  # main's spec.resources; v0.1.6's CRD prunes it
    }  # share: false is gone (omitempty)


def test_the_write_back_of_a_spec_without_a_template() -> None:
    spec = logic.go_spec({"source": {"type": "S3", "uri": "s3://b/d", "options": {"a": "1"}}})
    assert spec["volumeClaimTemplate"] == {
        "metadata": {"creationTimestamp": None},
        "spec": {"resources": {}},
        "status": {},
    }
    assert spec["source"]["options"] == {"a": "1"}
    assert spec["mountOptions"] == {} and spec["resources"] == {}
    selector = {"matchLabels": {}, "matchExpressions": [{"key": "k", "operator": "Exists"}]}
    assert logic.go_spec({"shareToNamespaceSelector": selector, "share": True})[
        "shareToNamespaceSelector"
    ] == {"matchExpressions": [{"key": "k", "operator": "Exists"}]}


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        ("100Ti", "100Ti"),
        ("1024Mi", "1Gi"),
        ("1.5Gi", "1536Mi"),
        ("0.5Ki", "512"),
        ("2000Mi", "2000Mi"),
        ("2000m", "2"),
        ("100m", "100m"),
        ("0.5", "500m"),
        ("1.5G", "1500M"),
        ("10G", "10G"),
        ("1000", "1k"),
        ("1e3", "1e3"),
        ("12e2", "1200"),
        ("0", "0"),
        ("0Gi", "0"),
        ("junk", "junk"),
    ],
)
def test_quantities_are_written_back_in_canonical_form(text: str, canonical: str) -> None:
    assert logic.canonical_quantity(text) == canonical


# --------------------------------------------------------------------------- the loader Job


def test_the_loader_job_has_the_real_shape() -> None:
    labels = {"app.kubernetes.io/managed-by": "modelfs"}
    annotations = {"note": "x", logic.ANN_ROUND_DURATION: "2s"}
    ds = dataset(secretRef="hf-token", labels=labels, annotations=annotations)
    ds["spec"]["source"]["options"] = {"repoType": "MODEL", "endpoint": "https://hf-mirror.com"}
    plan = step(ds, Observed(now=at(1)), backoff_limit=0)
    body = created(plan, "Job")
    assert body["metadata"]["name"] == "dataset-qwen-v1-round-1"
    assert body["metadata"]["labels"] == {**labels, NAME_LABEL: "qwen-v1"}
    assert NAME_LABEL == "baize.io/dataset-name"
    assert body["metadata"]["annotations"] == annotations
    (owner,) = body["metadata"]["ownerReferences"]
    assert owner["kind"] == "Dataset" and owner["controller"] is True
    spec = body["spec"]
    assert spec["backoffLimit"] == 0
    assert (spec["completions"], spec["parallelism"], spec["completionMode"]) == (
        1,
        1,
        "NonIndexed",
    )
    pod = spec["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    assert pod["securityContext"] == {"runAsUser": 0}
    (container,) = pod["containers"]
    assert container["name"] == "dataset-loader"
    assert container["image"] == "ghcr.io/baizeai/dataset-data-loader:0.1.0"
    assert container["command"] == ["/usr/local/bin/data-loader"]
    assert set(job_args(body)) == {
        "HUGGING_FACE",
        "huggingface://org/model",
        "--options=repoType=MODEL",
        "--options=endpoint=https://hf-mirror.com",
        "--mount-path=/",
        "--mount-mode=0774",
        "--mount-uid=1000",
        "--mount-gid=1000",
        "--mount-root=/baize/dataset/data",
    }
    assert job_args(body)[:2] == ["HUGGING_FACE", "huggingface://org/model"]
    assert pod["volumes"] == [
        {"name": "dataset-secret", "secret": {"secretName": "hf-token"}},
        {"name": "dataset-pvc", "persistentVolumeClaim": {"claimName": "qwen-v1"}},
    ]
    assert container["volumeMounts"] == [
        {"name": "dataset-secret", "mountPath": "/run/dataset/secrets", "readOnly": True},
        {"name": "dataset-pvc", "mountPath": "/baize/dataset/data"},
    ]
    assert spec["managedBy"] == logic.JOB_MANAGED_BY  # the one field that is the fake's own


def test_the_backoff_limit_defaults_to_the_charts() -> None:
    plan = step(dataset(), Observed(now=at(1)))
    assert created(plan, "Job")["spec"]["backoffLimit"] == 4


@pytest.mark.parametrize(
    ("type_", "requests", "limits"),
    [
        ("HUGGING_FACE", {"cpu": "2", "memory": "2Gi"}, {"cpu": "4", "memory": "8Gi"}),
        ("MODEL_SCOPE", {"cpu": "2", "memory": "2Gi"}, {"cpu": "4", "memory": "8Gi"}),
        ("CONDA", {"cpu": "2", "memory": "2Gi"}, {"cpu": "4", "memory": "4Gi"}),
        ("S3", {"cpu": "100m", "memory": "100Mi"}, {"cpu": "2", "memory": "2000Mi"}),
        ("GIT", {"cpu": "100m", "memory": "100Mi"}, {"cpu": "2", "memory": "2000Mi"}),
        ("HTTP", {"cpu": "100m", "memory": "100Mi"}, {"cpu": "2", "memory": "2000Mi"}),
    ],
)
def test_loader_resources_by_type(
    type_: str, requests: dict[str, str], limits: dict[str, str]
) -> None:
    body = logic.loader_job(dataset(type_=type_, status={"pvcName": "p"}), 1, 4)
    resources = body["spec"]["template"]["spec"]["containers"][0]["resources"]
    assert resources == {"requests": requests, "limits": limits}


def test_a_gpu_type_replaces_the_chart_resources() -> None:
    ds = dataset(type_="S3", uri="s3://b/d")
    ds["spec"]["source"]["options"] = {"gpuType": "nvidia-gpu"}
    body = logic.loader_job(ds, 1, 4)
    resources = body["spec"]["template"]["spec"]["containers"][0]["resources"]
    assert resources == {"requests": {"nvidia.com/gpu": "1"}, "limits": {"nvidia.com/gpu": "1"}}
    assert "--options=gpuType=nvidia-gpu" in job_args(body)


def test_conda_moves_its_files_into_a_configmap() -> None:
    ds = dataset("env", type_="CONDA", uri="conda://env?python=3.11")
    ds["spec"]["source"]["options"] = {
        "pipRequirementsTxt": "torch==2.5",
        "condaEnvironmentYml": "  ",
        "gpuType": "nvidia-gpu",
    }
    plan = step(ds, Observed(now=at(1)))
    configmap = created(plan, "ConfigMap")
    assert configmap["metadata"]["name"] == "dataset-env-config"
    assert configmap["metadata"]["labels"] == {NAME_LABEL: "env"}
    assert configmap["data"] == {"requirements.txt": "torch==2.5"}
    body = created(plan, "Job")
    assert "--options=condaEnvironmentYml=  " not in job_args(body)  # blank: stays an option
    assert '--options=condaEnvironmentYml="  "' in job_args(body)
    assert not any("pipRequirementsTxt" in a or "gpuType" in a for a in job_args(body))
    pod = body["spec"]["template"]["spec"]
    assert pod["volumes"][0] == {
        "name": "dataset-config-conda",
        "configMap": {
            "name": "dataset-env-config",
            "items": [{"key": "requirements.txt", "path": "requirements.txt"}],
        },
    }
    assert pod["containers"][0]["volumeMounts"][0]["mountPath"] == "/run/dataset/conda"
    ds["spec"]["source"]["options"]["pipRequirementsTxt"] = "torch==2.6"
    stored = {**configmap, "data": {"requirements.txt": "torch==2.5", "other": "kept"}}
    again = reconcile(ds, Observed(now=at(2), pvc=own_pvc("env", "env"), configmap=stored))
    (updated,) = again.updates
    assert updated["data"] == {"requirements.txt": "torch==2.6", "other": "kept"}


def test_options_are_read_when_a_rounds_job_is_made() -> None:
    ds = dataset()
    ds["spec"]["source"]["options"] = {"repoType": "MODEL"}
    one = "dataset-qwen-v1-round-1"
    step(ds, Observed(now=at(1)))
    ds["spec"]["source"]["options"] = {"repoType": "DATASET"}
    unchanged = step(ds, Observed(now=at(2), pvc=own_pvc(), jobs={one: job(one)}))
    assert not unchanged.creates  # the running round keeps its options
    done = {one: job(one, "succeeded", logic.rfc3339(at(3)))}
    step(ds, Observed(now=at(3), pvc=own_pvc(), jobs=done))
    ds["spec"]["dataSyncRound"] = 2
    nxt = step(ds, Observed(now=at(4), pvc=own_pvc(), jobs=done))
    (made,) = nxt.creates
    assert "--options=repoType=DATASET" in job_args(made)


@pytest.mark.parametrize(
    ("value", "arg"),
    [
        ("a b", '--options=include="a b"'),
        ("a\tb", '--options=include="a\\tb"'),
        ('say "hi" now', '--options=include="say \\"hi\\" now"'),
        ("a\\b c", '--options=include="a\\\\b c"'),
        ("*.json", "--options=include=*.json"),
        ("a\vb", "--options=include=a\vb"),  # \v is not \s in Go's regexp
    ],
)
def test_an_option_with_whitespace_reaches_the_loader_go_quoted(value: str, arg: str) -> None:
    ds = dataset(status={"pvcName": "p"})
    ds["spec"]["source"]["options"] = {"include": value}
    assert arg in job_args(logic.loader_job(ds, 1, 4))


# --------------------------------------------------------------------------- PVC, finalizers


def test_pvc_copies_labels_and_annotations() -> None:
    labels = {"app.kubernetes.io/managed-by": "modelfs", "model.samzong.dev/model": "qwen"}
    annotations = {"note": "x"}
    plan = step(dataset(labels=labels, annotations=annotations), Observed(now=at(1)))
    pvc = created(plan, "PersistentVolumeClaim")
    assert pvc["metadata"]["labels"] == {**labels, NAME_LABEL: "qwen-v1"}
    assert pvc["metadata"]["annotations"] == annotations
    assert pvc["spec"] == {
        "accessModes": ["ReadWriteMany"],
        "resources": {"requests": {"storage": "100Ti"}},
        "volumeMode": "Filesystem",
    }


def test_pvc_from_the_claim_template() -> None:
    template = {
        "spec": {
            "storageClassName": "fast",
            "accessModes": ["ReadWriteOnce"],
            "resources": {"requests": {"storage": "20480Mi"}},
        },
    }
    plan = step(dataset(volumeClaimTemplate=template), Observed(now=at(1)))
    pvc = created(plan, "PersistentVolumeClaim")
    assert pvc["metadata"]["name"] == "qwen-v1"
    assert pvc["spec"]["storageClassName"] == "fast"
    assert pvc["spec"]["accessModes"] == ["ReadWriteOnce"]
    assert pvc["spec"]["resources"]["requests"]["storage"] == "20Gi"
    assert plan.status["pvcName"] == "qwen-v1"


def test_a_pvc_of_someone_else_is_a_pvc_condition() -> None:
    plan = reconcile(dataset(), Observed(now=at(1), pvc=own_pvc(owner="other")))
    assert conditions(plan.status)["PVC"] == (
        "False",
        "PVCReady",
        "pvc qwen-v1 already exists, but not belong to dataset qwen-v1",
    )
    assert plan.status["phase"] == FAILED
    assert not plan.creates


def test_a_present_finalizer_is_left_alone() -> None:
    kept = reconcile(dataset(finalizers=[FINALIZER, "modelfs/keep"]), Observed(now=at(1)))
    assert kept.update is None


def test_deletion_deletes_the_pvc_then_clears_every_finalizer() -> None:
    ds = dataset(deleting=True, finalizers=[FINALIZER, "modelfs/keep"], status={"phase": READY})
    plan = reconcile(ds, Observed(now=at(1), pvc=own_pvc()))
    assert plan.deletes == [("v1", "PersistentVolumeClaim", "team-a", "qwen-v1")]
    assert plan.update is not None and "finalizers" not in plan.update["metadata"]
    assert not plan.creates and not plan.status_changed


def test_deleting_a_reference_leaves_its_pvc_to_the_garbage_collector() -> None:
    ds = dataset(type_="REFERENCE", uri="dataset://src/model", deleting=True)
    plan = reconcile(ds, Observed(now=at(1)))
    assert plan.deletes == [] and plan.update is not None


# --------------------------------------------------------------------------- types that run no Job


def test_a_pvc_dataset_is_ready_whatever_the_round() -> None:
    ds = dataset("vol", type_="PVC", uri="pvc://claim/models")
    missing = step(ds, Observed(now=at(1)))
    assert conditions(missing.status)["PVC"] == (
        "False",
        "PVCReady",
        'PersistentVolumeClaim "claim" not found',
    )
    assert missing.status["phase"] == READY  # the phase of a PVC Dataset is always READY
    plan = step(ds, Observed(now=at(2), pvc={"metadata": {"name": "claim"}}))
    assert plan.label_patches == [("team-a", "claim", {NAME_LABEL: "vol"})]
    assert ds["status"]["pvcName"] == "claim"
    ds["spec"]["dataSyncRound"] = 2
    raised = step(ds, Observed(now=at(3), pvc=own_pvc("claim", "vol")))
    assert not raised.creates
    assert ds["status"]["phase"] == READY and "lastSucceedRound" not in ds["status"]


def test_an_nfs_dataset_makes_a_pv_and_succeeds_every_round_at_once() -> None:
    ds = dataset("share", type_="NFS", uri="nfs://10.0.0.1/exports/models")
    plan = step(ds, Observed(now=at(1)))
    pv, pvc = plan.creates
    assert pv["metadata"]["name"] == "dataset-team-a-pvc-share"
    assert pv["metadata"]["labels"] == {NAME_LABEL: "share"}
    assert pv["spec"]["csi"]["volumeAttributes"]["subdir"] == "/exports/models"
    assert pv["spec"]["csi"]["volumeAttributes"]["mountPermissions"] == "0774"
    assert pvc["spec"]["storageClassName"] == "nfs-csi"
    assert pvc["spec"]["volumeName"] == "dataset-team-a-pvc-share"
    assert ds["status"]["phase"] == READY and ds["status"]["lastSucceedRound"] == 1
    ds["spec"]["dataSyncRound"] = 2
    observed = Observed(now=at(2), pvc=own_pvc("share", "share"), nfs_pv=pv)
    raised = step(ds, observed)
    assert not raised.creates
    assert ds["status"]["phase"] == READY and ds["status"]["lastSucceedRound"] == 2


# --------------------------------------------------------------------------- REFERENCE


def source_dataset(share: bool = True, selector: dict[str, Any] | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"source": {"type": "HUGGING_FACE", "uri": "huggingface://o/m"}}
    if share:
        spec["share"] = True
    if selector is not None:
        spec["shareToNamespaceSelector"] = selector
    return {
        "metadata": {"name": "model", "namespace": "src"},
        "spec": spec,
        "status": {"pvcName": "model", "phase": PROCESSING},
    }


def bound_source(share: bool = True, selector: dict[str, Any] | None = None) -> SourceObservation:
    return SourceObservation(
        dataset=source_dataset(share, selector),
        pvc={
            "metadata": {"name": "model"},
            "spec": {"volumeName": "pv-src", "accessModes": ["ReadWriteMany"]},
        },
        pv={
            "metadata": {"name": "pv-src", "resourceVersion": "3", "uid": "x"},
            "spec": {
                "claimRef": {"name": "model"},
                "persistentVolumeReclaimPolicy": "Delete",
                "csi": {"driver": "d"},
            },
            "status": {"phase": "Bound"},
        },
    )


def namespace(labels: dict[str, str]) -> dict[str, Any]:
    return {"metadata": {"name": "team-a", "labels": labels}}


def reference(**kw: Any) -> dict[str, Any]:
    return dataset("ref", type_="REFERENCE", uri="dataset://src/model", **kw)


def test_reference_is_ready_when_its_pvc_exists_without_waiting_for_the_source() -> None:
    ds = reference()
    obs = Observed(now=at(1), namespace=namespace({}), source=bound_source())
    plan = step(ds, obs)
    clone, pvc = plan.creates
    assert clone["kind"] == "PersistentVolume"
    assert clone["metadata"]["name"] == "dataset-team-a-ref-0123456789ab"
    assert clone["metadata"]["labels"] == {NAME_LABEL: "ref"}
    assert clone["spec"]["persistentVolumeReclaimPolicy"] == "Retain"
    assert "claimRef" not in clone["spec"]
    assert pvc["spec"]["volumeName"] == clone["metadata"]["name"]
    status = ds["status"]
    assert status["phase"] == READY  # the source is still PROCESSING
    assert status["readOnly"] is True
    assert status["lastSucceedRound"] == 1
    assert status["lastSyncTime"] == logic.rfc3339(T0)
    assert not any(o["kind"] == "Job" for o in plan.creates)


def test_a_raised_reference_turns_failed_for_good() -> None:
    ds = reference()
    step(ds, Observed(now=at(1), namespace=namespace({}), source=bound_source()))
    ds["spec"]["dataSyncRound"] = 2
    for later in (2, 100):
        plan = step(
            ds,
            Observed(now=at(later), namespace=namespace({}), source=bound_source(), pvc=own_pvc()),
        )
        assert not plan.creates
        assert ds["status"]["phase"] == FAILED
        assert ds["status"]["lastSucceedRound"] == 1
        assert all(c["status"] == "True" for c in ds["status"]["conditions"])  # no reason given


@pytest.mark.parametrize(
    ("source", "ns_labels", "message"),
    [
        (bound_source(share=False), {}, "source dataset dataset://src/model is not shared"),
        (
            bound_source(selector={"matchLabels": {"team": "b"}}),
            {"team": "a"},
            "source dataset dataset://src/model is not shared to current namespace",
        ),
        (
            SourceObservation(dataset_error="fetch source dataset dataset://src/model error: nope"),
            {},
            "fetch source dataset dataset://src/model error: nope",
        ),
    ],
)
def test_reference_refused_in_the_config_condition(
    source: SourceObservation, ns_labels: dict[str, str], message: str
) -> None:
    ds = reference(finalizers=[])
    plan = reconcile(ds, Observed(now=at(1), namespace=namespace(ns_labels), source=source))
    assert conditions(plan.status)["Config"] == ("False", "ConfigReady", message)
    assert plan.status["phase"] == FAILED
    assert plan.update is None  # validation comes before the finalizer
    assert plan.creates == [] and plan.requeue_after is None  # FAILED is not retried


def test_reference_namespace_read_error_is_a_go_text() -> None:
    src = bound_source(selector={"matchLabels": {"team": "a"}})
    plan = reconcile(reference(), Observed(now=at(1), source=src))
    assert conditions(plan.status)["Config"][2] == (
        'fetch current namespace team-a error: Namespace "team-a" not found'
    )


def test_reference_needs_the_source_pvc_bound() -> None:
    unbound = SourceObservation(
        dataset=source_dataset(), pvc={"metadata": {"name": "model"}, "spec": {}}
    )
    plan = reconcile(reference(), Observed(now=at(1), namespace=namespace({}), source=unbound))
    assert conditions(plan.status)["PVC"] == ("False", "PVCReady", "pvc src/model has no volume")
    assert plan.status["phase"] == FAILED
    no_pvc = SourceObservation(dataset={**source_dataset(), "status": {}})
    plan = reconcile(reference(), Observed(now=at(1), namespace=namespace({}), source=no_pvc))
    assert conditions(plan.status)["PVC"][2] == "source dataset src/model has no pvc"
    gone = SourceObservation(dataset=source_dataset())
    plan = reconcile(reference(), Observed(now=at(1), namespace=namespace({}), source=gone))
    assert conditions(plan.status)["PVC"][2] == (
        "get pvc src/model for source dataset src/model error: "
        'PersistentVolumeClaim "model" not found'
    )


def test_reference_keeps_its_first_error_message() -> None:
    ds = reference()
    step(ds, Observed(now=at(1), namespace=namespace({}), source=bound_source(share=False)))
    step(
        ds,
        Observed(
            now=at(2),
            namespace=namespace({"team": "a"}),
            source=SourceObservation(dataset_error="gone"),
        ),
    )
    assert (
        conditions(ds["status"])["Config"][2] == "source dataset dataset://src/model is not shared"
    )


def test_go_not_found_names_the_kind() -> None:
    assert logic.go_not_found("Job", "j", "batch") == 'Job.batch "j" not found'
    assert logic.go_not_found("PersistentVolumeClaim", "c") == (
        'PersistentVolumeClaim "c" not found'
    )


# --------------------------------------------------------------------------- label selectors


@pytest.mark.parametrize(
    ("selector", "labels", "expected"),
    [
        (None, {}, True),
        ({}, {"a": "1"}, True),
        ({"matchLabels": {"a": "1"}}, {"a": "1", "b": "2"}, True),
        ({"matchLabels": {"a": "1"}}, {"a": "2"}, False),
        (
            {"matchExpressions": [{"key": "a", "operator": "In", "values": ["1", "2"]}]},
            {"a": "2"},
            True,
        ),
        ({"matchExpressions": [{"key": "a", "operator": "In", "values": ["1"]}]}, {}, False),
        ({"matchExpressions": [{"key": "a", "operator": "NotIn", "values": ["1"]}]}, {}, True),
        (
            {"matchExpressions": [{"key": "a", "operator": "NotIn", "values": ["1"]}]},
            {"a": "1"},
            False,
        ),
        ({"matchExpressions": [{"key": "a", "operator": "Exists"}]}, {"a": ""}, True),
        ({"matchExpressions": [{"key": "a", "operator": "Exists"}]}, {}, False),
        ({"matchExpressions": [{"key": "a", "operator": "DoesNotExist"}]}, {}, True),
        ({"matchExpressions": [{"key": "a", "operator": "DoesNotExist"}]}, {"a": "x"}, False),
        (
            {
                "matchLabels": {"t": "x"},
                "matchExpressions": [{"key": "e", "operator": "In", "values": ["p"]}],
            },
            {"t": "x", "e": "q"},
            False,
        ),
    ],
)
def test_selector_semantics(selector: Any, labels: dict[str, str], expected: bool) -> None:
    assert logic.selector_matches(selector, labels) is expected


@pytest.mark.parametrize(
    "selector",
    [
        {"matchExpressions": [{"key": "a", "operator": "In", "values": []}]},
        {"matchExpressions": [{"key": "a", "operator": "Exists", "values": ["x"]}]},
        {"matchExpressions": [{"key": "a", "operator": "Gt", "values": ["1"]}]},
    ],
)
def test_invalid_selectors_are_errors(selector: dict[str, Any]) -> None:
    with pytest.raises(logic.SelectorError):
        logic.selector_matches(selector, {"a": "1"})


@given(st.dictionaries(st.sampled_from("abc"), st.sampled_from(["1", "2"])))
def test_match_labels_is_a_subset_test(labels: dict[str, str]) -> None:
    selector = {"matchLabels": {"a": "1"}}
    assert logic.selector_matches(selector, labels) is (labels.get("a") == "1")


# --------------------------------------------------------------------------- injection


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("2s", 2), ("500ms", 0.5), ("1m30s", 90), ("1.5h", 5400), ("0", 0), ("0.25", 0.25)],
)
def test_durations(text: str, seconds: float) -> None:
    assert logic.parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "2x", "s", "1s2", "-1s", "fast"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(logic.InjectionError):
        logic.parse_duration(text)


def test_fail_rounds() -> None:
    assert logic.parse_fail_rounds("1, 3") == frozenset({1, 3})
    assert logic.parse_fail_rounds("ALL") == "all"
    assert logic.parse_fail_rounds("") == frozenset()
    with pytest.raises(logic.InjectionError):
        logic.parse_fail_rounds("0")


def test_job_annotations_win_over_namespace_over_defaults() -> None:
    defaults = Timings(round_duration=0.3)
    ns = {logic.ANN_ROUND_DURATION: "5s", logic.ANN_FAIL_ROUNDS: "all"}
    job_annotations = {logic.ANN_ROUND_DURATION: "1s"}
    timings = logic.resolve_timings(job_annotations, ns, defaults)
    assert timings == Timings(round_duration=1, fail_rounds="all")
    assert logic.resolve_timings(None, None, defaults) == defaults
    with pytest.raises(logic.InjectionError, match="round-duration"):
        logic.resolve_timings({logic.ANN_ROUND_DURATION: "soon"}, None, defaults)


def test_a_malformed_annotation_is_skipped_with_a_warning_as_the_pod_simulator_does() -> None:
    defaults = Timings(round_duration=0.3)
    warnings: list[str] = []
    timings = logic.resolve_timings(
        {logic.ANN_ROUND_DURATION: "soon", logic.ANN_FAIL_ROUNDS: "x"},
        {logic.ANN_ROUND_DURATION: "2s"},
        defaults,
        warnings,
    )
    assert timings == Timings(round_duration=2)  # the Namespace's, then the default
    assert len(warnings) == 2 and "round-duration" in warnings[0]


def test_only_the_two_shared_annotations_exist() -> None:
    assert logic.ANNOTATIONS == (
        "fake.dataset.baizeai.io/fail-rounds",
        "fake.dataset.baizeai.io/round-duration",
    )


def test_job_verdict_after_the_round_duration() -> None:
    timings = Timings(round_duration=2, fail_rounds=frozenset({2}))
    running = {"metadata": {"name": "dataset-x-round-1"}, "status": {}}
    assert logic.job_verdict(running, T0, timings, at(1)) == logic.JobVerdict(
        done=False, remaining=1
    )
    ok = logic.job_verdict(running, T0, timings, at(2))
    assert ok.done and ok.succeeded
    second = {"metadata": {"name": "dataset-x-round-2"}, "status": {}}
    bad = logic.job_verdict(second, T0, timings, at(3))
    assert bad.done and not bad.succeeded
    patch = logic.job_status_patch(bad, T0, at(3))
    assert [c["type"] for c in patch["conditions"]] == ["FailureTarget", "Failed"]
    assert logic.ANN_FAIL_ROUNDS in patch["conditions"][1]["message"]
    assert logic.JobView.from_job({"metadata": {"name": "j"}, "status": patch}).failed
    win = logic.job_status_patch(ok, T0, at(2))
    view = logic.JobView.from_job({"metadata": {"name": "j"}, "status": win})
    assert view.succeeded and view.completion_time == logic.rfc3339(at(2))


# --------------------------------------------------------------------------- robustness


@pytest.mark.parametrize(
    "spec",
    [
        {},
        {"source": "HUGGING_FACE"},
        {"source": {"type": "HUGGING_FACE"}},
        {"source": {"type": "HUGGING_FACE", "uri": "x"}, "dataSyncRound": "two"},
    ],
)
def test_malformed_dataset_is_a_config_condition(spec: dict[str, Any]) -> None:
    ds = dataset()
    ds["spec"] = spec
    plan = reconcile(ds, Observed(now=at(1)))
    assert conditions(plan.status)["Config"][0:2] == ("False", "ConfigReady")
    assert plan.status["phase"] == FAILED
    assert plan.creates == []


def test_malformed_status_keeps_config_reason() -> None:
    status = logic.malformed_status({"metadata": {}, "status": "junk"}, "bad", at(1))
    assert status["phase"] == FAILED
    assert conditions(status)["Config"] == ("False", "ConfigReady", "bad")


@given(
    st.fixed_dictionaries(
        {},
        optional={
            "source": st.one_of(
                st.none(),
                st.text(max_size=3),
                st.fixed_dictionaries(
                    {},
                    optional={
                        "type": st.sampled_from(
                            ["HUGGING_FACE", "CONDA", "REFERENCE", "PVC", "NFS", "MANUAL", ""]
                        ),
                        "uri": st.sampled_from(
                            ["", "dataset://", "dataset://a/b", "pvc://p/x", "nfs://h/p"]
                        ),
                        "options": st.one_of(
                            st.none(), st.dictionaries(st.sampled_from(["a", "gpuType"]), st.text())
                        ),
                    },
                ),
            ),
            "dataSyncRound": st.one_of(st.integers(-2, 9), st.none(), st.text(max_size=2)),
            "volumeClaimRef": st.one_of(st.none(), st.just({"name": "c", "subPath": "../x"})),
            "volumeClaimTemplate": st.one_of(
                st.none(), st.just({"spec": {"resources": None}}), st.just("x")
            ),
            "mountOptions": st.one_of(st.none(), st.just({}), st.just("x")),
        },
    ),
    st.booleans(),
    st.booleans(),
)
def test_reconcile_never_raises(spec: dict[str, Any], deleting: bool, resumed: bool) -> None:
    ds = dataset(deleting=deleting, finalizers=[] if resumed else None)
    ds["spec"] = spec
    try:
        plan = reconcile(ds, Observed(now=at(1)), resumed=resumed)
        logic.go_spec(spec)
    except (KeyError, TypeError, AttributeError, ValueError) as error:  # pragma: no cover
        pytest.fail(f"reconcile raised {error!r} for {spec}")
    assert plan.status.get("phase") in {None, PROCESSING, READY, FAILED}
    assert plan.status.get("phase") != PENDING


# --------------------------------------------------------------------------- CLI


def test_cli_defaults_are_the_test_timings_and_flags_win() -> None:
    args = build_parser().parse_args(["--kubeconfig", "k"])
    settings = settings_from_args(args)
    assert settings.defaults == Timings()
    assert settings.backoff_limit == 4
    args = build_parser().parse_args(
        [
            "--kubeconfig",
            "k",
            "--sandbox",
            "--namespace",
            "a",
            "--namespace",
            "b",
            "--fail-rounds",
            "2",
            "--backoff-limit",
            "0",
        ]
    )
    settings = settings_from_args(args)
    assert settings.namespaces == ("a", "b")
    assert settings.defaults.round_duration == SANDBOX_TIMINGS.round_duration
    assert settings.defaults.fail_rounds == frozenset({2})
    assert settings.backoff_limit == 0


@pytest.mark.parametrize("flag", ["--pending-duration", "--transient-failed-duration"])
def test_the_invented_phases_are_gone_from_the_cli(flag: str) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--kubeconfig", "k", flag, "1s"])


# --------------------------------------------------------------------------- the work queue


async def test_work_queue_never_runs_a_key_twice_at_once_and_keeps_the_earliest_timer() -> None:
    from modelfs.testing.fake_dataset.controller import WorkQueue

    queue = WorkQueue()
    key = ("dataset", "ns", "a")
    queue.add(key)
    queue.add(key)  # deduplicated
    assert await queue.get() == key
    queue.add(key)  # while active: marked dirty, not queued
    assert queue._queue.empty()
    queue.done(key)  # requeued once done
    assert await queue.get() == key
    queue.done(key)
    queue.add_after(key, 5.0)
    queue.add_after(key, 0.01)  # the earlier one wins
    async with asyncio.timeout(2):
        assert await queue.get() == key
    queue.done(key)
    queue.close()
