"""The pure part of the fake Dataset controller: no I/O, no clock, no globals.

`reconcile()` mirrors the real controller's reconcile loop (BaizeAI/dataset
internal/controller/dataset/dataset_controller.go, read at main): the steps Config, finalizer,
PVC, ConfigMap, Job and JobStatus run in order, each step's error becomes a condition of that
type (reason `<Type>Ready` whatever the status, the text in `message`), the chain stops at the
first error, and the phase is then derived from the rounds. The runtime (controller.py) gathers an
`Observed` snapshot, calls `reconcile()`, and carries out the returned `Plan`.

What the fake adds on top of the real controller, all driven by `Timings`:
- a pending window after creation (the controller "has not reconciled yet"): status PENDING;
- a transient FAILED before each round's Job exists (FACTS.md: it shows briefly);
- the outcome of each loader Job (no pods run): `job_verdict()` decides success or failure after
  the round's duration, the way `fail-rounds` says;
- an Event `ConcurrentRounds` when a round starts while the previous round's Job still runs.
"""

from __future__ import annotations

import copy
import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

GROUP, VERSION, PLURAL, KIND = "dataset.baizeai.io", "v1alpha1", "datasets", "Dataset"
API_VERSION = f"{GROUP}/{VERSION}"
#: The real controller's finalizer (it has no domain prefix upstream).
FINALIZER = "dataset-controller"
#: The label the real controller puts on the PVCs, PVs and Jobs it makes (lo.Assign over the
#: Dataset's own labels), and by which it finds them.
NAME_LABEL = "dataset.baizeai.io/name"
#: How many round statuses the real controller keeps.
KEEP_ROUNDS = 5
DEFAULT_STORAGE = "100Ti"
COND_CONFIG, COND_PVC, COND_CONFIGMAP, COND_JOB, COND_JOBSTATUS = (
    "Config",
    "PVC",
    "ConfigMap",
    "Job",
    "JobStatus",
)
PENDING, PROCESSING, READY, FAILED = "PENDING", "PROCESSING", "READY", "FAILED"
#: Source types the real controller runs a loader Job for (`supportPreload`).
PRELOAD_TYPES = frozenset(
    {"GIT", "S3", "HTTP", "CONDA", "HUGGING_FACE", "MODEL_SCOPE", "DATABASE", "HADOOP"}
)

#: Fault and delay injection: read from the Dataset's annotations, then its Namespace's, then the
#: fake's defaults (CLI flags). The real controller copies the Dataset's annotations onto its PVC
#: and Jobs, so these show up there too, as they would.
ANNOTATION_PREFIX = "fake.dataset.baizeai.io/"
ANN_FAIL_ROUNDS = ANNOTATION_PREFIX + "fail-rounds"
ANN_ROUND_DURATION = ANNOTATION_PREFIX + "round-duration"
ANN_PENDING_DURATION = ANNOTATION_PREFIX + "pending-duration"
ANN_TRANSIENT_FAILED = ANNOTATION_PREFIX + "transient-failed-duration"
ANNOTATIONS = (ANN_FAIL_ROUNDS, ANN_ROUND_DURATION, ANN_PENDING_DURATION, ANN_TRANSIENT_FAILED)
#: `spec.managedBy` of the fake's Jobs: a real job controller leaves them alone (JobManagedBy).
JOB_MANAGED_BY = "fake.dataset.baizeai.io/job-controller"
EVENT_CONCURRENT_ROUNDS = "ConcurrentRounds"


# --------------------------------------------------------------------------- injection


class InjectionError(ValueError):
    """A malformed fake.dataset.baizeai.io/* annotation."""


_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ms|s|m|h)")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: str) -> float:
    """Seconds in a Go-style duration: `500ms`, `2s`, `1m30s`, `1.5h`; a bare number is
    seconds. Raises InjectionError."""
    value = text.strip()
    if not value:
        raise InjectionError("empty duration")
    try:
        seconds = float(value)
    except ValueError:
        pos, seconds = 0, 0.0
        for match in _DURATION_PART.finditer(value):
            if match.start() != pos:
                break
            seconds += float(match.group(1)) * _UNITS[match.group(2)]
            pos = match.end()
        if pos != len(value) or pos == 0:
            raise InjectionError(f"invalid duration {text!r} (e.g. 500ms, 2s, 1m30s)") from None
    if seconds < 0:
        raise InjectionError(f"negative duration {text!r}")
    return seconds


FailRounds = frozenset[int] | Literal["all"]


def parse_fail_rounds(text: str) -> FailRounds:
    """`"1,3"`, `"all"`, `""` (none). Raises InjectionError."""
    value = text.strip()
    if value.lower() == "all":
        return "all"
    rounds: set[int] = set()
    for part in filter(None, (p.strip() for p in value.split(","))):
        if not part.isdigit() or int(part) < 1:
            raise InjectionError(f"invalid round {part!r} in {text!r} (e.g. 1,3 or all)")
        rounds.add(int(part))
    return frozenset(rounds)


@dataclass(frozen=True)
class Timings:
    """How the fake behaves for one Dataset. Defaults are the test defaults: near-instant."""

    pending: float = 0.0
    transient_failed: float = 0.2
    round_duration: float = 0.3
    fail_rounds: FailRounds = frozenset()

    def fails(self, round_: int) -> bool:
        return self.fail_rounds == "all" or round_ in self.fail_rounds


def resolve_timings(
    dataset_annotations: Mapping[str, str] | None,
    namespace_annotations: Mapping[str, str] | None,
    defaults: Timings,
) -> Timings:
    """Each setting from the Dataset's annotation, else the Namespace's, else `defaults`.
    Raises InjectionError naming the annotation."""
    layers = [dataset_annotations or {}, namespace_annotations or {}]

    def pick(key: str) -> str | None:
        for layer in layers:
            if key in layer:
                return layer[key]
        return None

    values: dict[str, Any] = {}
    for key, attr, parse in (
        (ANN_PENDING_DURATION, "pending", parse_duration),
        (ANN_TRANSIENT_FAILED, "transient_failed", parse_duration),
        (ANN_ROUND_DURATION, "round_duration", parse_duration),
        (ANN_FAIL_ROUNDS, "fail_rounds", parse_fail_rounds),
    ):
        raw = pick(key)
        if raw is not None:
            try:
                values[attr] = parse(raw)
            except InjectionError as error:
                raise InjectionError(f"annotation {key}: {error}") from None
    return Timings(
        pending=values.get("pending", defaults.pending),
        transient_failed=values.get("transient_failed", defaults.transient_failed),
        round_duration=values.get("round_duration", defaults.round_duration),
        fail_rounds=values.get("fail_rounds", defaults.fail_rounds),
    )


# --------------------------------------------------------------------------- label selectors


class SelectorError(ValueError):
    """An invalid metav1.LabelSelector."""


def selector_matches(selector: Mapping[str, Any] | None, labels: Mapping[str, str]) -> bool:
    """metav1.LabelSelectorAsSelector(selector).Matches(labels): matchLabels and
    matchExpressions (In, NotIn, Exists, DoesNotExist) all ANDed. An empty selector matches
    everything; None matches everything too (the real controller skips the check when the
    selector is nil). Raises SelectorError for an invalid selector."""
    if not selector:
        return True
    match_labels = selector.get("matchLabels") or {}
    if not isinstance(match_labels, Mapping):
        raise SelectorError("matchLabels must be a map")
    for key, value in match_labels.items():
        if labels.get(key) != value:
            return False
    for expression in selector.get("matchExpressions") or []:
        key = expression.get("key")
        operator = expression.get("operator")
        values = list(expression.get("values") or [])
        if not key:
            raise SelectorError("a matchExpression has no key")
        if operator in ("In", "NotIn"):
            if not values:
                raise SelectorError(
                    f"for 'in', 'notin' operators, values set can't be empty ({key})"
                )
            if operator == "In" and labels.get(key) not in values:
                return False
            if operator == "NotIn" and key in labels and labels[key] in values:
                return False
        elif operator in ("Exists", "DoesNotExist"):
            if values:
                raise SelectorError(
                    f"values set must be empty for exists and does not exist ({key})"
                )
            if (operator == "Exists") != (key in labels):
                return False
        else:
            raise SelectorError(f"{operator!r} is not a valid label selector operator")
    return True


# --------------------------------------------------------------------------- helpers


def rfc3339(when: dt.datetime) -> str:
    """metav1.Time's wire format: RFC 3339, whole seconds, UTC."""
    return when.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: str | None) -> dt.datetime | None:
    if not text:
        return None
    try:
        return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


def job_name(dataset_name: str, round_: int) -> str:
    return f"dataset-{dataset_name}-round-{round_}"


def round_of_job(name: str) -> int | None:
    match = re.fullmatch(r"dataset-.+-round-(\d+)", name)
    return int(match.group(1)) if match else None


def _spec(ds: Mapping[str, Any]) -> dict[str, Any]:
    spec = ds.get("spec")
    return spec if isinstance(spec, dict) else {}


def source_type(ds: Mapping[str, Any]) -> str:
    source = _spec(ds).get("source")
    return str(source.get("type", "")) if isinstance(source, dict) else ""


def source_uri(ds: Mapping[str, Any]) -> str:
    source = _spec(ds).get("source")
    return str(source.get("uri", "")) if isinstance(source, dict) else ""


def data_sync_round(ds: Mapping[str, Any]) -> int:
    value = _spec(ds).get("dataSyncRound", 1)
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _uri_host_path(uri: str) -> tuple[str, str]:
    """Go's url.Parse(uri).Host and .Path for `scheme://host/path?query`."""
    rest = uri.split("://", 1)[1] if "://" in uri else ""
    rest = rest.split("?", 1)[0].split("#", 1)[0]
    host, _, path = rest.partition("/")
    return host, "/" + path if path else ""


def reference_target(ds: Mapping[str, Any]) -> tuple[str, str]:
    """(namespace, name) of the source of a REFERENCE Dataset (`dataset://<ns>/<name>`)."""
    host, path = _uri_host_path(source_uri(ds))
    return host, path.strip("/")


def pvc_name_for(ds: Mapping[str, Any]) -> str:
    """The PVC the real controller reads or makes for this Dataset."""
    spec = _spec(ds)
    ref = spec.get("volumeClaimRef")
    if isinstance(ref, dict) and ref.get("name"):
        return str(ref["name"])
    if source_type(ds) == "PVC":
        return _uri_host_path(source_uri(ds))[0]
    template = spec.get("volumeClaimTemplate")
    if isinstance(template, dict):
        meta = template.get("metadata")
        if isinstance(meta, dict) and meta.get("name"):
            return str(meta["name"])
    return str(ds["metadata"]["name"])


def owner_reference(ds: Mapping[str, Any]) -> dict[str, Any]:
    meta = ds["metadata"]
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "name": meta["name"],
        "uid": meta["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def clone_pv_name(ds: Mapping[str, Any]) -> str:
    meta = ds["metadata"]
    return f"dataset-{meta['namespace']}-{meta['name']}-{meta['uid'][:12]}"


def nfs_pv_name(ds: Mapping[str, Any]) -> str:
    return f"dataset-{ds['metadata']['namespace']}-pvc-{pvc_name_for(ds)}"


def copied_labels(ds: Mapping[str, Any]) -> dict[str, str]:
    """lo.Assign(ds.Labels, {NAME_LABEL: ds.Name})."""
    meta = ds["metadata"]
    return {**(meta.get("labels") or {}), NAME_LABEL: meta["name"]}


def copied_annotations(ds: Mapping[str, Any]) -> dict[str, str] | None:
    annotations = ds["metadata"].get("annotations")
    return dict(annotations) if annotations else None


def is_deleting(ds: Mapping[str, Any]) -> bool:
    return bool(ds["metadata"].get("deletionTimestamp"))


def set_condition(
    conditions: list[dict[str, Any]], type_: str, error: str | None, now: dt.datetime
) -> None:
    """kubeutils.SetCondition: in place. A new condition gets reason `<type>Ready`; the time and
    the message only change when the status flips (so a second, different error keeps the first
    message)."""
    found = next((c for c in conditions if c.get("type") == type_), None)
    if found is None:
        found = {"type": type_, "reason": type_ + "Ready"}
        conditions.append(found)
    if error is None:
        if found.get("status") != "True":
            found.update(status="True", lastTransitionTime=rfc3339(now), message="")
    elif found.get("status") != "False":
        found.update(status="False", lastTransitionTime=rfc3339(now), message=error)


def condition(status: Mapping[str, Any], type_: str) -> dict[str, Any] | None:
    for c in status.get("conditions") or []:
        if c.get("type") == type_:
            return dict(c)
    return None


def _omit_empty(status: dict[str, Any]) -> dict[str, Any]:
    """Go's omitempty on DatasetStatus (zero metav1.Time marshals as null and is pruned)."""
    cleaned = {k: v for k, v in status.items() if v not in (None, "", 0, False, [])}
    rounds = []
    for entry in cleaned.get("syncRoundStatuses") or []:
        rounds.append({k: v for k, v in entry.items() if v not in (None, "", 0, False)})
    if rounds:
        cleaned["syncRoundStatuses"] = rounds
    return cleaned


# --------------------------------------------------------------------------- observations


@dataclass(frozen=True)
class JobView:
    """What the Dataset controller reads of one loader Job."""

    name: str
    succeeded: bool = False
    failed: bool = False
    start_time: str | None = None
    completion_time: str | None = None

    @property
    def running(self) -> bool:
        return not (self.succeeded or self.failed)

    @classmethod
    def from_job(cls, job: Mapping[str, Any]) -> JobView:
        status = job.get("status") or {}
        failed = any(
            c.get("type") == "Failed" and c.get("status") == "True"
            for c in status.get("conditions") or []
        )
        return cls(
            name=job["metadata"]["name"],
            succeeded=(status.get("succeeded") or 0) > 0,
            failed=failed,
            start_time=status.get("startTime"),
            completion_time=status.get("completionTime"),
        )


@dataclass(frozen=True)
class SourceObservation:
    """For a REFERENCE Dataset: what the controller reads of the source, in the order it reads
    it. `error` is the first failed read (the real controller's wording)."""

    dataset: Mapping[str, Any] | None = None
    dataset_error: str | None = None
    pvc: Mapping[str, Any] | None = None
    pvc_error: str | None = None
    pv: Mapping[str, Any] | None = None
    pv_error: str | None = None
    clone_exists: bool = False


@dataclass(frozen=True)
class Observed:
    """Everything `reconcile()` may look at besides the Dataset itself."""

    now: dt.datetime
    namespace: Mapping[str, Any] | None = None  # the Dataset's Namespace object
    namespace_error: str | None = None
    pvc: Mapping[str, Any] | None = None  # the PVC named pvc_name_for(ds), if it exists
    jobs: Mapping[str, JobView] = field(default_factory=dict)  # loader Jobs by name
    source: SourceObservation | None = None  # REFERENCE only
    nfs_pv: Mapping[str, Any] | None = None  # NFS only: the PV named nfs_pv_name(ds)
    #: when this fake first showed the transient FAILED for the round now due (None: not yet)
    transient_since: dt.datetime | None = None


# --------------------------------------------------------------------------- the plan


@dataclass
class Plan:
    """What to do, in this order: set finalizers, delete, create, patch, write status, emit
    events; then reconcile again after `requeue_after` seconds if set."""

    status: dict[str, Any]
    status_changed: bool = False
    finalizers: list[str] | None = None  # replace metadata.finalizers with this list
    creates: list[dict[str, Any]] = field(default_factory=list)
    deletes: list[tuple[str, str, str | None, str]] = field(default_factory=list)
    label_patches: list[tuple[str, str, dict[str, str | None]]] = field(default_factory=list)
    events: list[tuple[str, str, str]] = field(default_factory=list)  # (type, reason, message)
    requeue_after: float | None = None
    #: the round whose transient FAILED this reconcile shows (the runtime remembers when)
    transient_round: int | None = None
    #: the Job created this time, for the fake job controller to time
    started_job: str | None = None
    notes: list[str] = field(default_factory=list)

    def requeue(self, after: float) -> None:
        after = max(after, 0.0)
        self.requeue_after = after if self.requeue_after is None else min(self.requeue_after, after)


class _StepError(Exception):
    pass


class _Defer(Exception):
    """Stop the step chain without touching the step's condition."""


# --------------------------------------------------------------------------- reconcile


def reconcile(ds: Mapping[str, Any], obs: Observed, timings: Timings) -> Plan:
    """One reconcile of the real controller, plus the fake's timing. Never raises on a
    malformed Dataset: that is a Config condition."""
    now = obs.now
    raw_status = ds.get("status")
    old_status: dict[str, Any] = raw_status if isinstance(raw_status, dict) else {}
    status: dict[str, Any] = copy.deepcopy(old_status)
    status.setdefault("conditions", [])
    plan = Plan(status=status)
    working = copy.deepcopy(dict(ds))
    working["status"] = status

    if is_deleting(ds):
        _reconcile_deletion(working, obs, plan)
    else:
        created = parse_time(ds["metadata"].get("creationTimestamp"))
        pending_left = (
            timings.pending - (now - created).total_seconds() if created is not None else 0.0
        )
        if pending_left > 0 and not old_status.get("conditions"):
            # not reconciled yet: the phase default (PENDING) and nothing else
            plan.status = {"phase": PENDING}
            plan.status_changed = old_status != plan.status
            plan.requeue(pending_left)
            return plan
        steps = (
            (COND_CONFIG, _validate),
            ("", _finalizer),
            (COND_PVC, _pvc),
            (COND_CONFIGMAP, _configmap),
            (COND_JOB, _job),
            (COND_JOBSTATUS, _job_status),
        )
        for type_, step in steps:
            try:
                step(working, obs, timings, plan)
            except _Defer:
                break
            except _StepError as error:
                if type_:
                    set_condition(status["conditions"], type_, str(error), now)
                plan.notes.append(f"{type_ or 'finalizer'}: {error}")
                break
            if type_:
                set_condition(status["conditions"], type_, None, now)

    _phase(working)
    plan.status = _omit_empty(status)
    plan.status_changed = plan.status != _omit_empty(copy.deepcopy(old_status))
    polls = not is_deleting(ds) and plan.status.get("phase") == PROCESSING
    if polls and plan.requeue_after is None:
        plan.requeue(5.0)  # the real controller polls a running round every 5 s
    return plan


def _reconcile_deletion(ds: dict[str, Any], obs: Observed, plan: Plan) -> None:
    status = ds["status"]
    try:
        _pvc_deletion(ds, obs, plan)
    except _StepError as error:
        set_condition(status["conditions"], COND_PVC, str(error), obs.now)
        plan.notes.append(f"PVC: {error}")
        return
    set_condition(status["conditions"], COND_PVC, None, obs.now)
    if ds["metadata"].get("finalizers"):
        plan.finalizers = []  # ds.Finalizers = nil: every finalizer, not only its own


def _pvc_deletion(ds: dict[str, Any], obs: Observed, plan: Plan) -> None:
    namespace = ds["metadata"]["namespace"]
    if isinstance(_spec(ds).get("volumeClaimRef"), dict):
        _claim_ref(ds, obs)  # upstream reads (never deletes) a referenced claim, even now
        return
    kind = source_type(ds)
    name = pvc_name_for(ds)
    if kind == "REFERENCE":
        return  # the owner reference garbage-collects its PVC
    if kind == "PVC":
        pvc = obs.pvc
        if (
            pvc is not None
            and (pvc["metadata"].get("labels") or {}).get(NAME_LABEL) == ds["metadata"]["name"]
        ):
            plan.label_patches.append((namespace, name, {NAME_LABEL: None}))
        return
    if kind == "NFS":
        plan.deletes.append(("v1", "PersistentVolume", None, nfs_pv_name(ds)))
    plan.deletes.append(("v1", "PersistentVolumeClaim", namespace, name))


def _validate(ds: dict[str, Any], obs: Observed, timings: Timings, plan: Plan) -> None:
    spec = ds.get("spec")
    if not isinstance(spec, dict) or not isinstance(spec.get("source"), dict):
        raise _StepError("spec.source is missing")
    if not source_type(ds) or not source_uri(ds):
        raise _StepError("spec.source.type and spec.source.uri are required")
    if data_sync_round(ds) < 1:
        raise _StepError(
            f"spec.dataSyncRound must be a positive integer: {spec.get('dataSyncRound')!r}"
        )
    if source_type(ds) == "REFERENCE":
        src = obs.source or SourceObservation(dataset_error="source not observed")
        if src.dataset is None:
            raise _StepError(src.dataset_error or f"fetch source dataset {source_uri(ds)} error")
        src_spec = _spec(src.dataset)
        if not src_spec.get("share"):
            raise _StepError(f"source dataset {source_uri(ds)} is not shared")
        selector = src_spec.get("shareToNamespaceSelector")
        if selector is not None:
            if obs.namespace is None:
                raise _StepError(
                    f"fetch current namespace {ds['metadata']['namespace']} error: "
                    f"{obs.namespace_error or 'not found'}"
                )
            labels = obs.namespace.get("metadata", {}).get("labels") or {}
            try:
                allowed = selector_matches(selector, labels)
            except SelectorError as error:
                raise _StepError(f"parse share to namespace selector error: {error}") from None
            if not allowed:
                raise _StepError(
                    f"source dataset {source_uri(ds)} is not shared to current namespace"
                )
    ref = spec.get("volumeClaimRef")
    if ref is not None and spec.get("volumeClaimTemplate"):
        raise _StepError("volumeClaimRef and volumeClaimTemplate cannot be both set")
    if isinstance(ref, dict):
        sub_path = str(ref.get("subPath") or "")
        if sub_path.startswith("/"):
            raise _StepError(f"subPath should not start with '/', got: {sub_path}")
        if ".." in sub_path:
            raise _StepError(f"subPath should not contain '..', got: {sub_path}")


def _finalizer(ds: dict[str, Any], obs: Observed, timings: Timings, plan: Plan) -> None:
    if FINALIZER not in (ds["metadata"].get("finalizers") or []):
        plan.finalizers = [FINALIZER]  # replaces whatever was there


def _claim_ref(ds: dict[str, Any], obs: Observed) -> None:
    ref = _spec(ds)["volumeClaimRef"]
    namespace = ds["metadata"]["namespace"]
    where = f"{namespace}/{ref.get('name')}"
    if obs.pvc is None:
        raise _StepError(
            f"get pvc {where} for dataset {namespace}/{ds['metadata']['name']} error: "
            f'persistentvolumeclaims "{ref.get("name")}" not found'
        )
    phase = (obs.pvc.get("status") or {}).get("phase", "")
    if phase != "Bound":
        raise _StepError(f"pvc {where} is not bound yet, current phase: {phase}")


def _pvc(ds: dict[str, Any], obs: Observed, timings: Timings, plan: Plan) -> None:
    status, meta, spec = ds["status"], ds["metadata"], _spec(ds)
    namespace, name = meta["namespace"], meta["name"]
    if isinstance(spec.get("volumeClaimRef"), dict):
        _claim_ref(ds, obs)
        status["pvcName"] = spec["volumeClaimRef"]["name"]
        return
    pvc_name = pvc_name_for(ds)
    kind = source_type(ds)
    pvc_spec: dict[str, Any] | None = None
    force_class, volume_override = "", ""
    if kind == "REFERENCE":
        if (condition(status, COND_PVC) or {}).get("status") == "True":
            return
        src = obs.source or SourceObservation()
        if src.dataset is None:
            raise _StepError(src.dataset_error or f"fetch source dataset {source_uri(ds)} error")
        src_meta = src.dataset["metadata"]
        src_pvc_name = (src.dataset.get("status") or {}).get("pvcName")
        if not src_pvc_name:
            raise _StepError(
                f"source dataset {src_meta['namespace']}/{src_meta['name']} has no pvc"
            )
        if src.pvc is None:
            raise _StepError(
                f"get pvc {src_meta['namespace']}/{src_pvc_name} for source dataset "
                f"{src_meta['namespace']}/{src_meta['name']} error: {src.pvc_error or 'not found'}"
            )
        volume = (src.pvc.get("spec") or {}).get("volumeName")
        if not volume:
            raise _StepError(f"pvc {src_meta['namespace']}/{src_pvc_name} has no volume")
        if src.pv is None:
            raise _StepError(
                f"get pv {volume} for source dataset {src_meta['namespace']}/{src_meta['name']}"
                f" error: {src.pv_error or 'not found'}"
            )
        if not src.clone_exists:
            plan.creates.append(_clone_pv(ds, src.pv))
        pvc_spec = copy.deepcopy(dict(src.pvc.get("spec") or {}))
        pvc_spec["volumeName"] = clone_pv_name(ds)
        status["lastSucceedRound"] = data_sync_round(ds)
        status["readOnly"] = True
    elif kind == "PVC":
        if obs.pvc is None:
            raise _StepError(f'persistentvolumeclaims "{pvc_name}" not found')
        owner = (obs.pvc["metadata"].get("labels") or {}).get(NAME_LABEL)
        if owner is not None and owner != name:
            raise _StepError(f"pvc {pvc_name} is not belong to dataset {namespace}/{name}")
        if owner is None:
            plan.label_patches.append((namespace, pvc_name, {NAME_LABEL: name}))
        status["pvcName"] = pvc_name
        return
    elif kind == "NFS":
        pv_name = nfs_pv_name(ds)
        if obs.nfs_pv is not None:
            if (obs.nfs_pv["metadata"].get("labels") or {}).get(NAME_LABEL) != name:
                raise _StepError(f"pv {pv_name} is not belong to dataset {namespace}/{name}")
        else:
            plan.creates.append(_nfs_pv(ds))
        status["lastSucceedRound"] = data_sync_round(ds)
        force_class, volume_override = "nfs-csi", pv_name

    status["pvcName"] = pvc_name
    if pvc_spec is None:
        template = spec.get("volumeClaimTemplate")
        template_spec = template.get("spec") if isinstance(template, dict) else None
        pvc_spec = copy.deepcopy(template_spec) if isinstance(template_spec, dict) else {}
        if not pvc_spec.get("accessModes"):
            pvc_spec["accessModes"] = ["ReadWriteMany"]
        pvc_spec.setdefault("volumeMode", "Filesystem")
        resources = pvc_spec.setdefault("resources", {})
        requests = resources.setdefault("requests", {}) if isinstance(resources, dict) else {}
        if not requests.get("storage") or str(requests.get("storage")).strip("0") == "":
            requests["storage"] = DEFAULT_STORAGE
        if force_class:
            pvc_spec["storageClassName"] = force_class
    if volume_override:
        pvc_spec["volumeName"] = volume_override
    if obs.pvc is None:
        metadata: dict[str, Any] = {
            "name": pvc_name,
            "namespace": namespace,
            "labels": copied_labels(ds),
            "ownerReferences": [owner_reference(ds)],
        }
        if copied_annotations(ds):
            metadata["annotations"] = copied_annotations(ds)
        plan.creates.append(
            {
                "apiVersion": "v1",
                "kind": "PersistentVolumeClaim",
                "metadata": metadata,
                "spec": pvc_spec,
            }
        )
    elif (obs.pvc["metadata"].get("labels") or {}).get(NAME_LABEL) != name:
        raise _StepError(f"pvc {pvc_name} already exists, but not belong to dataset {name}")


def _clone_pv(ds: Mapping[str, Any], source_pv: Mapping[str, Any]) -> dict[str, Any]:
    pv = copy.deepcopy(dict(source_pv))
    pv.pop("status", None)
    meta = pv.setdefault("metadata", {})
    for key in (
        "resourceVersion",
        "uid",
        "creationTimestamp",
        "managedFields",
        "finalizers",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "generation",
    ):
        meta.pop(key, None)
    meta["name"] = clone_pv_name(ds)
    meta["ownerReferences"] = [owner_reference(ds)]
    meta["labels"] = {**(meta.get("labels") or {}), NAME_LABEL: ds["metadata"]["name"]}
    pv.setdefault("spec", {}).pop("claimRef", None)
    pv["spec"]["persistentVolumeReclaimPolicy"] = "Retain"
    pv["apiVersion"], pv["kind"] = "v1", "PersistentVolume"
    return pv


def _nfs_pv(ds: Mapping[str, Any]) -> dict[str, Any]:
    host, path = _uri_host_path(source_uri(ds))
    name, pvc_name, namespace = nfs_pv_name(ds), pvc_name_for(ds), ds["metadata"]["namespace"]
    mode = str((_spec(ds).get("mountOptions") or {}).get("mode") or "0774")
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {
            "name": name,
            "annotations": {"pv.kubernetes.io/provisioned-by": "nfs.csi.k8s.io"},
            "labels": {NAME_LABEL: ds["metadata"]["name"]},
            "ownerReferences": [owner_reference(ds)],
        },
        "spec": {
            "capacity": {"storage": DEFAULT_STORAGE},
            "accessModes": ["ReadWriteMany"],
            "persistentVolumeReclaimPolicy": "Retain",
            "storageClassName": "nfs-csi",
            "mountOptions": ["nfsvers=4.1"],
            "csi": {
                "driver": "nfs.csi.k8s.io",
                "volumeHandle": f"{host}#{path}#{name}#",
                "volumeAttributes": {
                    "server": host,
                    "share": "/",
                    "subdir": path,
                    "onDelete": "retain",
                    "csi.storage.k8s.io/pv/name": name,
                    "csi.storage.k8s.io/pvc/name": pvc_name,
                    "csi.storage.k8s.io/pvc/namespace": namespace,
                    "mountPermissions": mode,
                },
            },
        },
    }


def _configmap(ds: dict[str, Any], obs: Observed, timings: Timings, plan: Plan) -> None:
    """CONDA keeps its environment files in a ConfigMap upstream; the fake makes none (no
    loader reads it), so the condition is simply True."""


def _job(ds: dict[str, Any], obs: Observed, timings: Timings, plan: Plan) -> None:
    if source_type(ds) not in PRELOAD_TYPES:
        return
    status, meta = ds["status"], ds["metadata"]
    round_ = data_sync_round(ds)
    if round_ <= (status.get("lastSucceedRound") or 0):
        return
    name = job_name(meta["name"], round_)
    if name not in obs.jobs:
        running_before = [
            view.name
            for view in obs.jobs.values()
            if view.running and (round_of_job(view.name) or 0) < round_
        ]
        if not status.get("inProcessing") and not running_before and timings.transient_failed > 0:
            # FACTS.md: FAILED shows briefly before the first Job of a round exists
            since = obs.transient_since
            waited = (obs.now - since).total_seconds() if since is not None else 0.0
            if since is None or waited < timings.transient_failed:
                plan.transient_round = round_
                plan.requeue(timings.transient_failed - waited)
                raise _Defer
        plan.creates.append(_loader_job(ds, round_))
        plan.started_job = name
        plan.requeue(timings.round_duration)
        if running_before:
            plan.events.append(
                (
                    "Warning",
                    EVENT_CONCURRENT_ROUNDS,
                    f"round {round_} started while {', '.join(sorted(running_before))} "
                    "still runs (the Dataset operator runs both Jobs concurrently)",
                )
            )
    status["inProcessing"] = True
    status["inProcessingRound"] = round_


def _loader_job(ds: Mapping[str, Any], round_: int) -> dict[str, Any]:
    """A batch/v1 Job shaped like the loader's. `spec.managedBy` keeps a real job controller
    off it: the fake decides its outcome (`job_verdict`)."""
    meta, spec = ds["metadata"], _spec(ds)
    args = [source_type(ds), source_uri(ds)]
    for key, value in sorted((spec["source"].get("options") or {}).items()):
        args.append(
            f"--options={key}={value!r}" if re.search(r"\s", value) else f"--options={key}={value}"
        )
    metadata: dict[str, Any] = {
        "name": job_name(meta["name"], round_),
        "namespace": meta["namespace"],
        "labels": copied_labels(ds),
        "ownerReferences": [owner_reference(ds)],
    }
    if copied_annotations(ds):
        metadata["annotations"] = copied_annotations(ds)
    volumes: list[dict[str, Any]] = [
        {"name": "dataset-pvc", "persistentVolumeClaim": {"claimName": ds["status"].get("pvcName")}}
    ]
    mounts: list[dict[str, Any]] = [{"name": "dataset-pvc", "mountPath": "/baize/dataset/data"}]
    if spec.get("secretRef"):
        volumes.append({"name": "dataset-secret", "secret": {"secretName": spec["secretRef"]}})
        mounts.append(
            {"name": "dataset-secret", "mountPath": "/baize/dataset/secrets", "readOnly": True}
        )
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": metadata,
        "spec": {
            "managedBy": JOB_MANAGED_BY,
            "backoffLimit": 0,
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [
                        {
                            "name": "dataset-loader",
                            "image": "fake.dataset.baizeai.io/data-loader:fake",
                            "args": args,
                            "volumeMounts": mounts,
                        }
                    ],
                    "volumes": volumes,
                }
            },
        },
    }


def _job_status(ds: dict[str, Any], obs: Observed, timings: Timings, plan: Plan) -> None:
    status, meta = ds["status"], ds["metadata"]
    created = meta.get("creationTimestamp")
    if source_type(ds) not in PRELOAD_TYPES:
        status["lastSyncTime"] = created
        return
    if not status.get("inProcessing"):
        last = status.get("lastSucceedRound") or 0
        if last > 0:
            name = job_name(meta["name"], last)
            view = obs.jobs.get(name)
            if view is None:
                raise _StepError(f'jobs.batch "{name}" not found')
            status["lastSyncTime"] = view.completion_time or created
        else:
            status["lastSyncTime"] = created
        return
    round_ = status.get("inProcessingRound") or 0
    name = job_name(meta["name"], round_)
    view = obs.jobs.get(name)
    if view is None:
        if plan.started_job == name:  # created just now: the next reconcile reads it
            return
        raise _StepError(f'jobs.batch "{name}" not found')
    rounds: list[dict[str, Any]] = status.setdefault("syncRoundStatuses", [])
    entry = next((r for r in rounds if r.get("round") == round_), None)
    if entry is None:
        entry = {"round": round_, "jobName": name, "startTime": rfc3339(obs.now), "succeed": False}
        rounds.append(entry)
    if view.succeeded:
        end = view.completion_time or rfc3339(obs.now)
        entry["startTime"] = view.start_time or entry.get("startTime")
        entry["endTime"] = end
        entry["succeed"] = True
        status["lastSyncTime"] = end
        status["inProcessing"] = False
        status["lastSucceedRound"] = round_
        status["inProcessingRound"] = 0
    elif view.failed:
        status["inProcessing"] = False
        status["inProcessingRound"] = 0
        entry["succeed"] = False
    spec_round = data_sync_round(ds)
    status["syncRoundStatuses"] = [
        r for r in rounds if (r.get("round") or 0) + KEEP_ROUNDS > spec_round
    ]


def _phase(ds: dict[str, Any]) -> None:
    status = ds["status"]
    kind = source_type(ds)
    if kind == "REFERENCE" and any(
        c.get("status") == "False" for c in status.get("conditions") or []
    ):
        status["phase"] = FAILED
        return
    last = status.get("lastSucceedRound") or 0
    if data_sync_round(ds) < 1:  # unreadable spec (the fake's own guard): never READY
        status["phase"] = FAILED
    elif kind == "PVC":
        status["phase"] = READY
    elif status.get("inProcessing"):
        status["phase"] = PROCESSING
    elif last != data_sync_round(ds):
        status["phase"] = FAILED
    else:
        status["phase"] = READY


# ------------------------------------------------------------------------- the fake job controller


@dataclass(frozen=True)
class JobVerdict:
    """The fake's decision about a loader Job: still running (`remaining` seconds), or done."""

    done: bool
    succeeded: bool = False
    remaining: float = 0.0


def job_verdict(
    job: Mapping[str, Any], started: dt.datetime, timings: Timings, now: dt.datetime
) -> JobVerdict:
    """A running Job finishes `timings.round_duration` after `started`; it fails when its round
    is in `timings.fail_rounds`. A Job that already finished stays as it is."""
    view = JobView.from_job(job)
    if not view.running:
        return JobVerdict(done=True, succeeded=view.succeeded)
    remaining = timings.round_duration - (now - started).total_seconds()
    if remaining > 0:
        return JobVerdict(done=False, remaining=remaining)
    round_ = round_of_job(view.name) or 0
    return JobVerdict(done=True, succeeded=not timings.fails(round_))


def job_status_patch(verdict: JobVerdict, started: dt.datetime, now: dt.datetime) -> dict[str, Any]:
    """The Job status a real job controller would write for this outcome (with the
    SuccessCriteriaMet/FailureTarget conditions the API server requires first)."""
    start, end = rfc3339(started), rfc3339(max(now, started))
    if verdict.succeeded:
        conditions = [
            _job_condition(
                "SuccessCriteriaMet",
                "CompletionsReached",
                "Reached expected number of succeeded pods",
                end,
            ),
            _job_condition(
                "Complete", "CompletionsReached", "Reached expected number of succeeded pods", end
            ),
        ]
        return {
            "startTime": start,
            "completionTime": end,
            "succeeded": 1,
            "active": 0,
            "ready": 0,
            "terminating": 0,
            "uncountedTerminatedPods": {},
            "conditions": conditions,
        }
    message = "Job has reached the specified backoff limit (fake.dataset.baizeai.io/fail-rounds)"
    return {
        "startTime": start,
        "failed": 1,
        "active": 0,
        "ready": 0,
        "terminating": 0,
        "uncountedTerminatedPods": {},
        "conditions": [
            _job_condition("FailureTarget", "BackoffLimitExceeded", message, end),
            _job_condition("Failed", "BackoffLimitExceeded", message, end),
        ],
    }


def _job_condition(type_: str, reason: str, message: str, when: str) -> dict[str, Any]:
    return {
        "type": type_,
        "status": "True",
        "reason": reason,
        "message": message,
        "lastProbeTime": when,
        "lastTransitionTime": when,
    }


def malformed_status(ds: Mapping[str, Any], error: str, now: dt.datetime) -> dict[str, Any]:
    """The status for a Dataset the fake cannot even read: FAILED, with the reason in Config."""
    old = ds.get("status") if isinstance(ds.get("status"), dict) else {}
    status = copy.deepcopy(old) if old else {}
    conditions = status.get("conditions")
    if not isinstance(conditions, list):
        conditions = status["conditions"] = []
    set_condition(conditions, COND_CONFIG, error, now)
    status["phase"] = FAILED
    return _omit_empty(status)
