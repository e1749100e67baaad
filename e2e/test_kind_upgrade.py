"""A real `helm upgrade` of a 2-replica release on kind, while ModelSyncs are being created
(issue 21): the operator image runs as the chart's Deployment, and the upgrade (a changed pod
annotation) rolls both pods, one at a time (RollingUpdate, maxSurge 1, maxUnavailable 0). Never
more than 5 s without a live leader, every ModelSync READY with one Dataset and one loader round
each (no duplicate round), and no Traceback or error line in any operator pod's log, old or new.

e2e/test_leader.py plays the same upgrade with processes on the local control plane, which runs
no pods; this module needs kind (`--k8s=kind`) and the operator image (`$MODELFS_OPERATOR_IMAGE`,
loaded into kind), and skips otherwise. `make test-kind` runs it in the install tests' session,
which has the image, after e2e/test_install.py, with the fake Dataset controller (on kind the
real one's loader pods would really download from the made-up repos). The release is
`modelfs-ha` in a namespace of that name, so nothing config/default left is in its way.

Who leads is read from the Lease (`kubectl get lease -n modelfs-ha modelfs-operator`) every
100 ms, with the operator pods: a holder is live while its pod is not being deleted and its
renewTime is within its leaseDurationSeconds (kind's node shares this machine's clock). Each
pod's log is followed (`kubectl logs -f`) from when its container runs, so a replaced pod's log
is kept to its last line. Figures are printed (`-s`).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import subprocess
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml
from kubernetes.aio.client import ApiClient, CoordinationV1Api, CoreV1Api
from kubernetes.aio.client.exceptions import ApiException

from e2e.operator.kube import Kube
from e2e.test_faults import Rollout
from e2e.test_helm import CHART, helm
from e2e.test_install import IMAGE_ENV, OPERATOR, Target, apply_dataset_crd
from modelfs.testing.operator import problem_lines
from modelfs.testing.pytest_plugin import Cluster, running_dataset_engine

pytestmark = pytest.mark.e2e

RELEASE = "modelfs-ha"
NAMESPACE = "modelfs-ha"
"""A release and namespace of their own: nothing of config/default (its ClusterRole is named
modelfs-operator) is in the way, whatever the install tests before left."""
DEPLOYMENT = f"{RELEASE}-operator"
LEASE = OPERATOR
"""The Lease's name: `--leader-election-id`'s default, which the chart keeps."""
PODS = f"app.kubernetes.io/component=operator,app.kubernetes.io/instance={RELEASE}"
POLL_SECONDS = 0.1
MAX_LEADERLESS_SECONDS = 5.0
SYNCS = {"hf": 15, "http": 15, "pvc": 10}
"""40 ModelSyncs, 30 of them with a loader Job (PVC runs none)."""
CREATE_EVERY = 1.0
"""Seconds between two ModelSyncs: 40 s of creation, longer than the rollout of two pods."""


# --------------------------------------------------------------------------- who leads


@dataclass(frozen=True)
class Sample:
    """One read of the Lease and the operator pods."""

    at: float
    """monotonic time of the read"""
    holder: str
    renewed_ago: float
    """seconds between the Lease's renewTime and the read"""
    lease_seconds: float
    live_pods: frozenset[str]
    """the operator pods that exist and are not being deleted"""

    @property
    def leader_live(self) -> bool:
        pod = self.holder.rsplit("_", 1)[0]  # identity: <pod name>_<uuid per process>
        return (
            bool(self.holder) and pod in self.live_pods and self.renewed_ago <= self.lease_seconds
        )


def longest_leaderless(samples: Iterable[Sample]) -> float:
    """The longest time in which no sample showed a live leader: from the last sample that did
    (or the first sample) to the next that does (or the last sample). At most one poll longer
    than the truth."""
    longest, start, open_ = 0.0, None, False
    for sample in samples:
        start = sample.at if start is None else start
        if not sample.leader_live:
            open_ = True
        if open_:
            longest = max(longest, sample.at - start)
        if sample.leader_live:
            start, open_ = sample.at, False
    return longest


def holder_changes(samples: Iterable[Sample]) -> list[str]:
    """The holders in the order they held the Lease ("" when nobody did)."""
    found: list[str] = []
    for sample in samples:
        if not found or found[-1] != sample.holder:
            found.append(sample.holder)
    return found


def test_leaderless_time_counts_a_released_expired_or_deleted_holder() -> None:
    """The measurement itself, without a cluster."""

    def at(t: float, holder: str, pods: str = "a b", renewed_ago: float = 1.0) -> Sample:
        return Sample(t, holder, renewed_ago, 15.0, frozenset(pods.split()))

    steady = [at(t / 10, "a_1") for t in range(50)]
    assert longest_leaderless(steady) == 0.0
    released = [at(0, "a_1"), at(1, ""), at(2, ""), at(2.5, "b_2"), at(3, "b_2")]
    assert longest_leaderless(released) == pytest.approx(2.5)
    # a holder whose pod is being deleted, or whose Lease expired, leads no more
    deleted = [at(0, "a_1"), at(1, "a_1", pods="b"), at(7, "a_1", pods="b"), at(8, "b_2")]
    assert longest_leaderless(deleted) == pytest.approx(8)
    expired = [at(0, "a_1"), at(1, "a_1", renewed_ago=16), at(4, "b_2")]
    assert longest_leaderless(expired) == pytest.approx(4)
    assert longest_leaderless([at(0, ""), at(6, "")]) == pytest.approx(6)  # nobody, to the end
    assert holder_changes(released) == ["a_1", "", "b_2"]


# --------------------------------------------------------------------------- pods' logs


@dataclass
class PodLogs:
    """`kubectl logs -f` of each operator pod into a file of its own, from when its container
    runs until it stops (a replaced pod's stream ends with its last line)."""

    kubectl: str
    kubeconfig: Path
    folder: Path
    followers: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def path(self, pod: str) -> Path:
        return self.folder / f"{pod}.log"

    def follow(self, running: Iterable[str]) -> None:
        """Follow each running pod not followed yet, or whose follower failed before it read
        a line (its container was not up yet)."""
        for pod in running:
            follower = self.followers.get(pod)
            if follower is not None and not (
                follower.poll() not in (None, 0) and self.path(pod).stat().st_size == 0
            ):
                continue
            with self.path(pod).open("ab") as out, (self.folder / f"{pod}.err").open("ab") as err:
                self.followers[pod] = subprocess.Popen(
                    [self.kubectl, f"--kubeconfig={self.kubeconfig}", "-n", NAMESPACE,
                     "logs", "-f", pod, "-c", "operator"],
                    stdout=out, stderr=err,
                )  # fmt: skip

    def stop(self) -> None:
        for follower in self.followers.values():
            if follower.poll() is None:
                follower.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                follower.wait(timeout=10)
            if follower.poll() is None:
                follower.kill()
                follower.wait()

    def texts(self) -> dict[str, str]:
        return {pod: self.path(pod).read_text(errors="replace") for pod in self.followers}


# --------------------------------------------------------------------------- the watch


@dataclass
class Watch:
    """Reads the Lease and the operator pods every POLL_SECONDS (until cancelled)."""

    api: ApiClient
    logs: PodLogs
    samples: list[Sample] = field(default_factory=list)
    pods_seen: dict[str, float] = field(default_factory=dict)
    """pod name -> when it was first seen"""
    deleted: dict[str, float] = field(default_factory=dict)
    """pod name -> when it was first seen being deleted (or gone)"""

    async def read(self) -> Sample:
        lease = await CoordinationV1Api(self.api).read_namespaced_lease(LEASE, NAMESPACE)
        listed = await CoreV1Api(self.api).list_namespaced_pod(NAMESPACE, label_selector=PODS)
        now = time.monotonic()
        live, running = set(), []
        for pod in listed.items:
            assert pod.metadata is not None and pod.metadata.name
            name = pod.metadata.name
            self.pods_seen.setdefault(name, now)
            if pod.metadata.deletion_timestamp is None:
                live.add(name)
            else:
                self.deleted.setdefault(name, now)
            statuses = (pod.status.container_statuses if pod.status else None) or []
            if any(s.state and (s.state.running or s.state.terminated) for s in statuses):
                running.append(name)
        for name in set(self.pods_seen) - {p.metadata.name for p in listed.items if p.metadata}:
            self.deleted.setdefault(name, now)
        self.logs.follow(running)
        spec = lease.spec
        renewed = spec.renew_time if spec else None
        return Sample(
            at=now,
            holder=str((spec.holder_identity if spec else "") or ""),
            renewed_ago=(datetime.now(UTC) - renewed).total_seconds() if renewed else 1e9,
            lease_seconds=float((spec.lease_duration_seconds if spec else 0) or 0),
            live_pods=frozenset(live),
        )

    async def run(self) -> None:
        while True:
            with contextlib.suppress(ApiException, OSError, TimeoutError):
                self.samples.append(await self.read())
            await asyncio.sleep(POLL_SECONDS)

    async def leader(self, within: float = 120.0) -> str:
        """The pod that leads, once one does."""
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            if self.samples and self.samples[-1].leader_live:
                return self.samples[-1].holder.rsplit("_", 1)[0]
            await asyncio.sleep(POLL_SECONDS)
        last = self.samples[-1] if self.samples else None
        pytest.fail(f"no operator pod leads within {within}s: {last}")


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="session")  # first: its reasons come before any cluster is made
def operator_image(request: pytest.FixtureRequest, dataset_controller: str) -> str:
    mode = request.config.getoption("--k8s")
    if mode != "kind":
        pytest.skip(
            f"needs --k8s=kind (this session: --k8s={mode}): a helm upgrade rolls operator "
            "pods, and the local control plane has no kubelet (e2e/test_leader.py plays the "
            "upgrade with processes there)"
        )
    image = os.environ.get(IMAGE_ENV)
    if not image:
        pytest.skip(f"needs ${IMAGE_ENV}, the operator image to load into kind (make test-kind)")
    if dataset_controller != "fake":
        pytest.skip(
            "needs --dataset-controller=fake on kind: the real controller's loader pods would "
            "really download from the made-up repos"
        )
    return image


def image_values(image: str) -> dict[str, dict[str, str]]:
    """The chart's image values for `repository:tag` or `repository@sha256:...`."""
    if "@" in image:
        repository, digest = image.split("@", 1)
        return {"image": {"repository": repository, "digest": digest}}
    repository, _, tag = image.rpartition(":")
    if not repository or "/" in tag:  # no tag (a colon of a registry's port is no tag)
        repository, tag = image, "latest"
    return {"image": {"repository": repository, "tag": tag}}


def test_image_values() -> None:
    assert image_values("modelfs:e2e") == {"image": {"repository": "modelfs", "tag": "e2e"}}
    assert image_values("localhost:5000/modelfs") == {
        "image": {"repository": "localhost:5000/modelfs", "tag": "latest"}
    }
    assert image_values("r.io/m@sha256:ab") == {
        "image": {"repository": "r.io/m", "digest": "sha256:ab"}
    }


@pytest.fixture
def release(
    operator_image: str, request: pytest.FixtureRequest, kubectl: str, tmp_path: Path
) -> Iterator[Target]:
    """The chart installed as release `modelfs-ha` (2 replicas, the image loaded into kind), and
    the fake Dataset controller; uninstalled after the test."""
    kind = request.getfixturevalue("kind_cluster")
    target = Target(request.getfixturevalue("k8s_kubeconfig"), kubectl, None, kind)
    kind.load_docker_image(operator_image)
    apply_dataset_crd(target, "fake")
    values = tmp_path / "values.yaml"
    values.write_text(yaml.safe_dump(image_values(operator_image)))
    cluster = Cluster("kind", target.kubeconfig)
    with running_dataset_engine("fake", cluster, tmp_path / "dataset-engine"):
        try:
            helm(
                target, "install", RELEASE, str(CHART), "-n", NAMESPACE, "--create-namespace",
                "-f", str(values), "--wait", "--timeout=5m",
            )  # fmt: skip
            yield target
        finally:
            helm(target, "uninstall", RELEASE, "-n", NAMESPACE, "--wait", check=False)
            target.run("delete", "namespace", NAMESPACE, "--ignore-not-found", check=False)


# --------------------------------------------------------------------------- the upgrade


async def create_paced(rollout: Rollout, created_at: dict[str, float]) -> None:
    """The rollout's ModelSyncs, one every CREATE_EVERY seconds."""
    for name, (model, version, _) in rollout.syncs.items():
        await rollout.kube.create("ModelSync", name, {"modelRef": model, "version": version})
        rollout.sync_round[name] = 1
        created_at[name] = time.monotonic()
        await asyncio.sleep(CREATE_EVERY)


def deployment_pods(target: Target) -> list[str]:
    got = target.run("-n", NAMESPACE, "get", "pods", "-l", PODS, "-o", "json").stdout
    return sorted(
        p["metadata"]["name"]
        for p in json.loads(got)["items"]
        if not p["metadata"].get("deletionTimestamp")
    )


async def test_helm_upgrade_of_two_replicas_never_leaves_the_cluster_without_a_leader(
    operator_image: str,
    release: Target,
    k8s_api: ApiClient,
    k8s_namespace: str,
    tmp_path: Path,
) -> None:
    """ModelSyncs created one a second; `helm upgrade` (a new pod annotation) replaces both
    pods meanwhile. No more than 5 s without a live leader, the Lease held by a new pod at the
    end, every ModelSync READY with one round each, and no error in any pod's log."""
    target = release
    logs = PodLogs(target.kubectl, target.kubeconfig, tmp_path / "pods")
    logs.folder.mkdir()
    watch = Watch(k8s_api, logs)
    watching = asyncio.get_running_loop().create_task(watch.run())
    try:
        first_leader = await watch.leader()
        before = await asyncio.to_thread(deployment_pods, target)
        assert len(before) == 2 and first_leader in before, (first_leader, before)
        rollout = await Rollout.prepare(Kube(k8s_api, k8s_namespace), SYNCS, round_duration="2s")
        begun = time.monotonic()
        created_at: dict[str, float] = {}
        creating = asyncio.get_running_loop().create_task(create_paced(rollout, created_at))
        await asyncio.sleep(5)  # a few ModelSyncs served by the old pods first

        values = tmp_path / "upgrade.yaml"
        values.write_text(yaml.safe_dump({"podAnnotations": {"e2e.modelfs/rollout": "2"}}))
        upgrade_started = time.monotonic()
        await asyncio.to_thread(
            helm, target, "upgrade", RELEASE, str(CHART), "-n", NAMESPACE,
            "--reuse-values", "-f", str(values), "--wait", "--timeout=5m",
        )  # fmt: skip
        await asyncio.to_thread(
            target.run, "-n", NAMESPACE, "rollout", "status", f"deployment/{DEPLOYMENT}",
            "--timeout=180s",
        )  # fmt: skip
        upgraded = time.monotonic()
        after = await asyncio.to_thread(deployment_pods, target)
        await creating
        settled = await rollout.wait_settled(within=240)
        counts = await rollout.check_stays()
        last_leader = await watch.leader()
    finally:
        watching.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watching
        # Deleted while the operator and the Dataset controller run (finalizers).
        await asyncio.to_thread(
            target.run, "-n", k8s_namespace, "delete", "modelsyncs,models,modelsources",
            "--all", "--wait=true", "--timeout=120s", check=False,
        )  # fmt: skip
        await asyncio.to_thread(logs.stop)

    samples = [s for s in watch.samples if s.at >= begun]
    gap = longest_leaderless(samples)
    polls = [b.at - a.at for a, b in itertools.pairwise(samples)]
    during = sum(upgrade_started <= t <= upgraded for t in created_at.values())
    texts = logs.texts()
    print(
        f"\nhelm upgrade of 2 replicas ({operator_image}): rolled in "
        f"{upgraded - upgrade_started:.1f}s; longest time without a live leader {gap:.2f}s "
        f"(polls: {len(samples)}, longest {max(polls, default=0):.2f}s); holders "
        f"{[h.rsplit('_', 1)[0] or 'nobody' for h in holder_changes(samples)]}; "
        f"{during} of {len(created_at)} ModelSyncs created during the rollout; all READY "
        f"{settled:.1f}s after the last; {dict(counts)}\npod logs: {logs.folder}"
    )
    assert len(after) == 2 and not set(after) & set(before), (before, after)
    assert set(before) <= set(watch.deleted), "the old pods were replaced"
    assert during >= 5, "ModelSyncs were being created while the pods rolled"
    assert max(polls) < MAX_LEADERLESS_SECONDS, "the Lease went unread too long to tell"
    assert gap <= MAX_LEADERLESS_SECONDS, holder_changes(samples)
    assert last_leader in after, (last_leader, after)
    assert counts["modelsyncs"] == counts["ready"] == counts["datasets"] == 40
    assert counts["jobs"] == 30  # one loader round per loading ModelSync: none twice
    # every pod's log was captured (old ones to their end), and none shows an error
    assert set(texts) >= set(before) | set(after), (sorted(texts), before, after)
    problems = {pod: problem_lines(text) for pod, text in texts.items()}
    for pod in set(before) | set(after):
        assert "Started modelfs operator" in texts[pod], f"{logs.path(pod)} was not captured"
    assert not any(problems.values()), {pod: found[:10] for pod, found in problems.items() if found}
