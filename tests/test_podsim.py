"""The pure parts of the pod simulator (modelfs.testing.podsim): fault injection, Pod and Node
status shapes, the PVs it provisions. Its runtime is tested against the real Dataset controller
in e2e/test_dataset_engine.py."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from modelfs.testing import podsim
from modelfs.testing.fake_dataset.logic import ANN_FAIL_ROUNDS, ANN_ROUND_DURATION

T0 = dt.datetime(2026, 11, 27, 16, 0, 0, tzinfo=dt.UTC)
T1 = T0 + dt.timedelta(seconds=3)


def job_pod(job: str = "dataset-qwen-round-2", **spec: Any) -> dict[str, Any]:
    return {
        "metadata": {
            "name": f"{job}-x7k2p",
            "namespace": "team-a",
            "uid": "0b5e-uid",
            "labels": {"batch.kubernetes.io/job-name": job, "job-name": job},
            "ownerReferences": [
                {"apiVersion": "batch/v1", "kind": "Job", "name": job, "controller": True}
            ],
        },
        "spec": {
            "restartPolicy": "Never",
            "containers": [{"name": "dataset-loader", "image": "ghcr.io/baizeai/loader:0.1.0"}],
            **spec,
        },
        "status": {"phase": "Pending", "qosClass": "Burstable"},
    }


# --------------------------------------------------------------------------- rounds and jobs


@pytest.mark.parametrize(
    ("name", "round_"),
    [
        ("dataset-qwen-round-1", 1),
        ("dataset-qwen-model-v2.5.0-round-12", 12),
        ("dataset-a-round-3-round-4", 4),
        ("dataset-qwen-round-", None),
        ("my-job", None),
        ("", None),
        (None, None),
    ],
)
def test_job_round(name: str | None, round_: int | None) -> None:
    assert podsim.job_round(name) == round_


def test_owning_job_from_owner_reference_then_labels() -> None:
    pod = job_pod("dataset-x-round-1")
    assert podsim.owning_job(pod) == "dataset-x-round-1"
    del pod["metadata"]["ownerReferences"]
    assert podsim.owning_job(pod) == "dataset-x-round-1"
    del pod["metadata"]["labels"]["batch.kubernetes.io/job-name"]
    assert podsim.owning_job(pod) == "dataset-x-round-1"  # legacy job-name label
    pod["metadata"]["labels"] = {}
    assert podsim.owning_job(pod) is None
    replica = {"metadata": {"ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet"}]}}
    assert podsim.owning_job(replica) is None


# --------------------------------------------------------------------------- fault injection


def test_plan_defaults() -> None:
    plan = podsim.plan_for("dataset-a-round-1", [("Job", {}), ("Namespace", None)], 1.5)
    assert plan == podsim.Plan(duration=1.5, exit_code=0, round=1)
    assert not plan.fails


@pytest.mark.parametrize(
    ("value", "job", "fails"),
    [
        ("all", "dataset-a-round-1", True),
        ("ALL", "dataset-a-round-7", True),
        ("1,3", "dataset-a-round-1", True),
        ("1,3", "dataset-a-round-2", False),
        ("1,3", "dataset-a-round-3", True),
        ("", "dataset-a-round-1", False),
        ("2", "not-a-dataset-job", False),  # no round: only "all" applies
        ("all", "not-a-dataset-job", True),
    ],
)
def test_plan_fail_rounds(value: str, job: str, fails: bool) -> None:
    plan = podsim.plan_for(job, [("Job", {ANN_FAIL_ROUNDS: value})])
    assert plan.fails is fails
    assert plan.exit_code == (1 if fails else 0)


def test_job_annotation_wins_over_namespace() -> None:
    job = {ANN_FAIL_ROUNDS: "2", ANN_ROUND_DURATION: "500ms"}
    namespace = {ANN_FAIL_ROUNDS: "all", ANN_ROUND_DURATION: "9s"}
    plan = podsim.plan_for("dataset-a-round-1", [("Job", job), ("Namespace", namespace)])
    assert plan.duration == 0.5
    assert not plan.fails
    # Each annotation on its own: the namespace supplies what the Job lacks.
    plan = podsim.plan_for(
        "dataset-a-round-1", [("Job", {ANN_ROUND_DURATION: "2s"}), ("Namespace", namespace)]
    )
    assert (plan.duration, plan.fails) == (2.0, True)


@pytest.mark.parametrize(
    ("annotations", "duration", "fails"),
    [
        ({ANN_FAIL_ROUNDS: "one,two"}, 1.0, False),
        ({ANN_FAIL_ROUNDS: "0"}, 1.0, False),
        ({ANN_ROUND_DURATION: "soon"}, 1.0, False),
        ({ANN_ROUND_DURATION: "-2s"}, 1.0, False),
        ({ANN_ROUND_DURATION: ""}, 1.0, False),
    ],
)
def test_malformed_annotation_is_a_warning_and_the_default(
    annotations: dict[str, str], duration: float, fails: bool
) -> None:
    plan = podsim.plan_for("dataset-a-round-1", [("Job ns/j", annotations)], 1.0)
    assert (plan.duration, plan.fails) == (duration, fails)
    assert len(plan.warnings) == 1
    assert plan.warnings[0].startswith("Job ns/j: fake.dataset.baizeai.io/")


def test_malformed_job_annotation_falls_through_to_the_namespace() -> None:
    plan = podsim.plan_for(
        "dataset-a-round-1",
        [("Job", {ANN_FAIL_ROUNDS: "x"}), ("Namespace", {ANN_FAIL_ROUNDS: "all"})],
    )
    assert plan.fails
    assert len(plan.warnings) == 1


# --------------------------------------------------------------------------- pods


def test_needs_binding() -> None:
    pod = job_pod()
    assert podsim.needs_binding(pod)
    assert not podsim.needs_binding({**pod, "spec": {**pod["spec"], "nodeName": "n"}})
    assert not podsim.needs_binding({**pod, "status": {"phase": "Failed"}})
    deleted = {**pod, "metadata": {**pod["metadata"], "deletionTimestamp": "2026-11-27T16:00:00Z"}}
    assert not podsim.needs_binding(deleted)


def test_running_status_looks_like_a_kubelets() -> None:
    pod = job_pod(initContainers=[{"name": "init", "image": "busybox"}])
    patch = podsim.running_status(pod, T0)
    assert patch["metadata"] == {"uid": "0b5e-uid"}  # a precondition: never another pod's
    status = patch["status"]
    assert status["phase"] == "Running"
    assert status["startTime"] == "2026-11-27T16:00:00Z"
    assert status["podIP"].startswith("10.244.")
    assert status["hostIP"] == podsim.NODE_IP
    assert {c["type"]: c["status"] for c in status["conditions"]} == {
        "PodReadyToStartContainers": "True",
        "Initialized": "True",
        "Ready": "True",
        "ContainersReady": "True",
        "PodScheduled": "True",
    }
    (container,) = status["containerStatuses"]
    assert container["name"] == "dataset-loader"
    assert container["ready"] is container["started"] is True
    assert container["state"] == {"running": {"startedAt": "2026-11-27T16:00:00Z"}}
    assert container["containerID"].startswith("podsim://")
    assert container["imageID"].startswith("ghcr.io/baizeai/loader:0.1.0@sha256:")
    (init,) = status["initContainerStatuses"]
    assert init["state"]["terminated"]["exitCode"] == 0


@pytest.mark.parametrize(
    ("code", "phase", "reason", "pod_reason"),
    [(0, "Succeeded", "Completed", "PodCompleted"), (1, "Failed", "Error", "PodFailed")],
)
def test_finished_status(code: int, phase: str, reason: str, pod_reason: str) -> None:
    patch = podsim.finished_status(job_pod(), T0, T1, code)
    status = patch["status"]
    assert status["phase"] == phase
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert (ready["status"], ready["reason"]) == ("False", pod_reason)
    (container,) = status["containerStatuses"]
    assert container["ready"] is False
    assert container["state"]["terminated"] == {
        "exitCode": code,
        "reason": reason,
        "startedAt": "2026-11-27T16:00:00Z",
        "finishedAt": "2026-11-27T16:00:03Z",
        "containerID": container["containerID"],
    }
    assert "initContainerStatuses" not in status


def test_pod_ip_is_stable_per_pod() -> None:
    a = podsim.running_status(job_pod(), T0)["status"]["podIP"]
    assert a == podsim.running_status(job_pod(), T1)["status"]["podIP"]


# --------------------------------------------------------------------------- node


def test_node() -> None:
    body = podsim.node_body()
    assert body["metadata"]["name"] == "modelfs-sim-node"
    assert body["metadata"]["labels"]["kubernetes.io/hostname"] == "modelfs-sim-node"
    status = podsim.node_status(T0)["status"]
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "True"
    pressure = [c for c in status["conditions"] if c["type"] != "Ready"]
    assert {c["status"] for c in pressure} == {"False"}
    assert status["allocatable"] == status["capacity"]
    assert int(status["capacity"]["pods"]) >= 1000


def test_without_taint() -> None:
    taints = [
        {"key": podsim.NOT_READY_TAINT, "effect": "NoSchedule"},
        {"key": "gpu", "value": "yes", "effect": "NoSchedule"},
    ]
    assert podsim.without_taint(taints, podsim.NOT_READY_TAINT) == [taints[1]]
    assert podsim.without_taint(None, podsim.NOT_READY_TAINT) == []


# --------------------------------------------------------------------------- storage


def claim(**spec: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": "qwen-model-v2.5.0", "namespace": "team-a", "uid": "c1a1-uid"},
        "spec": {
            "accessModes": ["ReadWriteMany"],
            "resources": {"requests": {"storage": "100Ti"}},
            "volumeMode": "Filesystem",
            **spec,
        },
        "status": {"phase": "Pending"},
    }


def test_pv_for_claim_is_pre_bound_and_copies_the_claim() -> None:
    pv = podsim.pv_for_claim(claim())
    assert pv["metadata"]["name"] == "podsim-c1a1-uid"
    assert pv["metadata"]["labels"] == {podsim.PV_LABEL: podsim.NODE_NAME}
    spec = pv["spec"]
    assert spec["capacity"] == {"storage": "100Ti"}
    assert spec["accessModes"] == ["ReadWriteMany"]
    assert spec["volumeMode"] == "Filesystem"
    assert "storageClassName" not in spec  # "" matches a claim without a class
    assert spec["claimRef"] == {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "namespace": "team-a",
        "name": "qwen-model-v2.5.0",
        "uid": "c1a1-uid",
    }
    assert spec["persistentVolumeReclaimPolicy"] == "Retain"
    assert spec["hostPath"]["path"] == "/tmp/modelfs-podsim/team-a/qwen-model-v2.5.0"
    with_class = podsim.pv_for_claim(claim(storageClassName="fast", volumeMode="Block"))
    assert with_class["spec"]["storageClassName"] == "fast"
    assert with_class["spec"]["volumeMode"] == "Block"


def test_needs_volume() -> None:
    assert podsim.needs_volume(claim())
    assert not podsim.needs_volume(claim(volumeName="pv-1"))  # NFS, REFERENCE: named PV
    bound = {**claim(), "status": {"phase": "Bound"}}
    assert not podsim.needs_volume(bound)
    deleted = claim()
    deleted["metadata"]["deletionTimestamp"] = "2026-11-27T16:00:00Z"
    assert not podsim.needs_volume(deleted)


def test_only_own_released_pvs_are_deleted() -> None:
    pv = podsim.pv_for_claim(claim())
    assert not podsim.pv_to_delete({**pv, "status": {"phase": "Bound"}})
    assert podsim.pv_to_delete({**pv, "status": {"phase": "Released"}})
    assert podsim.pv_to_delete({**pv, "status": {"phase": "Failed"}})
    # A REFERENCE Dataset's clone of it keeps the labels but has another name: not ours.
    clone = {**pv, "metadata": {**pv["metadata"], "name": "dataset-team-b-ref-0123456789ab"}}
    assert not podsim.pv_to_delete({**clone, "status": {"phase": "Released"}})
    other_node = podsim.pv_for_claim(claim(), node="elsewhere")
    assert not podsim.pv_to_delete({**other_node, "status": {"phase": "Released"}})


def test_parser_defaults_and_errors() -> None:
    args = podsim.build_parser().parse_args(["--kubeconfig", "k"])
    assert (args.round_duration, args.storage, args.namespaces) == (1.0, True, [])
    args = podsim.build_parser().parse_args(
        ["--kubeconfig", "k", "--round-duration", "250ms", "--namespace", "a", "--no-storage"]
    )
    assert (args.round_duration, args.storage, args.namespaces) == (0.25, False, ["a"])
    with pytest.raises(SystemExit):
        podsim.build_parser().parse_args(["--kubeconfig", "k", "--round-duration", "soon"])
