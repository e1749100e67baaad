"""The pure part of the fake Dataset controller: no I/O, no clock, no globals.

`reconcile()` mirrors the real controller's reconcile loop (BaizeAI/dataset v0.1.6,
internal/controller/dataset/dataset_controller.go), corrected by docs/dataset-controller.md.
The steps Config, finalizer, PVC, ConfigMap, Job and JobStatus run in order, each step's
error becomes a condition of that type (reason `<Type>Ready` whatever the status, the text in
`message`, Go client wording), the chain stops at the first error, and the phase is then derived
from the rounds. The runtime (controller.py) gathers an `Observed` snapshot, calls `reconcile()`,
and carries out the returned `Plan`.

Two quirks of the real controller are modelled on purpose, because a client sees them:
- it adds its finalizer with a full Update of the Dataset: the spec goes back through Go's
  structs (`go_spec`), which writes `volumeClaimTemplate: {metadata: {}, spec: {resources: {}},
  status: {}}`, `resources: {}` and `mountOptions: {}` (then defaulted by the API server); and
  controller-runtime zeroes the object before decoding the response, so the conditions set
  before the Update are lost: the first round's conditions come in the order PVC, ConfigMap,
  Job, JobStatus, and Config only on the next reconcile. `reconcile()` stops at that Update
  (`Plan.update`, `Plan.resume`); the runtime sends it and calls `reconcile(response, ...,
  resumed=True)` for the rest of the chain.
- its Job reads come from an informer cache that lags: in the reconcile that creates a round's
  Job, JobStatus is False with `Job.batch "<job>" not found` (the phase is PROCESSING); its own
  status write triggers the next reconcile, which finds the Job.

Running rounds are polled every `POLL_SECONDS` (Jobs are not watched). What the fake adds is the
outcome of each loader Job (no pods run): `job_verdict()` decides success or failure after the
round's duration, the way the `fail-rounds` annotation says; the runtime's job controller writes
it on the Job, and the Dataset controller sees it at its next poll, as the real one does.
"""

from __future__ import annotations

import copy
import datetime as dt
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from fractions import Fraction
from typing import Any, Literal

from modelfs.pkg.dataset import SPEC_KEYS

GROUP, VERSION, PLURAL, KIND = "dataset.baizeai.io", "v1alpha1", "datasets", "Dataset"
API_VERSION = f"{GROUP}/{VERSION}"
#: The real controller's finalizer (it has no domain prefix upstream).
FINALIZER = "dataset-controller"
#: The label the real controller puts on the PVCs, PVs, ConfigMaps and Jobs it makes
#: (lo.Assign over the Dataset's own labels), and by which it finds them (constants.go).
NAME_LABEL = "baize.io/dataset-name"
#: How many round statuses the real controller keeps.
KEEP_ROUNDS = 5
DEFAULT_STORAGE = "100Ti"
#: A PROCESSING Dataset is reconciled again after this many seconds (RequeueAfter).
POLL_SECONDS = 5.0
COND_CONFIG, COND_PVC, COND_CONFIGMAP, COND_JOB, COND_JOBSTATUS = (
    "Config",
    "PVC",
    "ConfigMap",
    "Job",
    "JobStatus",
)
PENDING, PROCESSING, READY, FAILED = "PENDING", "PROCESSING", "READY", "FAILED"
#: Source types the real controller runs a loader Job for (`supportPreload`).
PRELOAD_TYPES = frozenset({"GIT", "S3", "HTTP", "CONDA", "HUGGING_FACE", "MODEL_SCOPE"})

#: The loader Job, as the Helm chart's rendered config makes it (dataset_job_spec_yaml).
LOADER_IMAGE = "ghcr.io/baizeai/dataset-data-loader:0.1.0"
LOADER_COMMAND = "/usr/local/bin/data-loader"
LOADER_CONTAINER = "dataset-loader"
DEFAULT_BACKOFF_LIMIT = 4
DATA_MOUNT = "/baize/dataset/data"
SECRET_MOUNT = "/run/dataset/secrets"
CONDA_MOUNT = "/run/dataset/conda"
CONDA_FILES = {"condaEnvironmentYml": "environment.yaml", "pipRequirementsTxt": "requirements.txt"}
#: requests, limits of the loader container by source type (Quantity's canonical text).
_CHART_RESOURCES = ({"cpu": "100m", "memory": "100Mi"}, {"cpu": "2", "memory": "2000Mi"})
_TYPE_RESOURCES = {
    "HUGGING_FACE": ({"cpu": "2", "memory": "2Gi"}, {"cpu": "4", "memory": "8Gi"}),
    "MODEL_SCOPE": ({"cpu": "2", "memory": "2Gi"}, {"cpu": "4", "memory": "8Gi"}),
    "CONDA": ({"cpu": "2", "memory": "2Gi"}, {"cpu": "4", "memory": "4Gi"}),
}
_GPU_RESOURCES = {
    "nvidia-gpu": {"nvidia.com/gpu": "1"},
    "nvidia-vgpu": {"nvidia.com/vgpu": "1", "nvidia.com/gpumem": "500"},
    "metax-gpu": {"metax-tech.com/gpu": "1"},
}

#: Fault and delay injection: read from the loader Job's annotations (the controller copies the
#: Dataset's onto it), then its Namespace's, then the fake's defaults (CLI flags). The pod
#: simulator that runs with the real controller honours the same two names.
ANNOTATION_PREFIX = "fake.dataset.baizeai.io/"
ANN_FAIL_ROUNDS = ANNOTATION_PREFIX + "fail-rounds"
ANN_ROUND_DURATION = ANNOTATION_PREFIX + "round-duration"
ANNOTATIONS = (ANN_FAIL_ROUNDS, ANN_ROUND_DURATION)
#: `spec.managedBy` of the fake's Jobs: a real job controller leaves them alone (JobManagedBy).
JOB_MANAGED_BY = "fake.dataset.baizeai.io/job-controller"


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
    """How the fake's loader Jobs behave. Defaults are the test defaults: near-instant."""

    round_duration: float = 0.3
    fail_rounds: FailRounds = frozenset()

    def fails(self, round_: int) -> bool:
        return self.fail_rounds == "all" or round_ in self.fail_rounds


def resolve_timings(
    job_annotations: Mapping[str, str] | None,
    namespace_annotations: Mapping[str, str] | None,
    defaults: Timings,
    warnings: list[str] | None = None,
) -> Timings:
    """Each setting from the Job's (the Dataset's) annotation, else the Namespace's, else
    `defaults`. A malformed value raises InjectionError naming the annotation; with a
    `warnings` list it is skipped instead (the next source applies) and described there, as
    the pod simulator of the real engine does."""
    values: dict[str, Any] = {}
    for where, layer in (("Job", job_annotations), ("Namespace", namespace_annotations)):
        for key, attr, parse in (
            (ANN_ROUND_DURATION, "round_duration", parse_duration),
            (ANN_FAIL_ROUNDS, "fail_rounds", parse_fail_rounds),
        ):
            if attr in values or key not in (layer or {}):
                continue
            try:
                values[attr] = parse(str((layer or {})[key]))
            except InjectionError as error:
                if warnings is None:
                    raise InjectionError(f"annotation {key}: {error}") from None
                warnings.append(f"{where} annotation {key}: {error}; ignored")
    return Timings(
        round_duration=values.get("round_duration", defaults.round_duration),
        fail_rounds=values.get("fail_rounds", defaults.fail_rounds),
    )


# --------------------------------------------------------------------------- Go round trips


_BINARY = {"Ki": 1, "Mi": 2, "Gi": 3, "Ti": 4, "Pi": 5, "Ei": 6}
_DECIMAL = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}
_DECIMAL_SUFFIX = {v: k for k, v in _DECIMAL.items()}
_BINARY_SUFFIX = {v: k for k, v in _BINARY.items()}
_QUANTITY = re.compile(
    r"([+-]?(?:\d+\.?\d*|\.\d+))(?:(Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE])|[eE]([+-]?\d+))?"
)


def canonical_quantity(text: str) -> str:
    """resource.Quantity's String(): what Go writes back for a quantity it has parsed (`1024Mi`
    -> `1Gi`, `1.5Gi` -> `1536Mi`, `2000m` -> `2`, `1.5G` -> `1500M`). Text that does not parse
    is returned as is."""
    match = _QUANTITY.fullmatch(text.strip())
    if match is None:
        return text
    number, suffix, exponent = match.groups()
    try:
        value = Fraction(Decimal(number))
    except (InvalidOperation, ValueError):
        return text
    if suffix in _BINARY:
        value *= Fraction(1024) ** _BINARY[suffix]
        style = "binary"
    elif exponent is not None:
        value *= Fraction(10) ** int(exponent)
        style = "exponent"
    else:
        value *= Fraction(10) ** _DECIMAL[suffix or ""]
        style = "decimal"
    nano = value * 10**9  # Quantity keeps nine decimals, rounding up
    value = Fraction(-((-nano.numerator) // nano.denominator), 10**9)
    if value == 0:
        return "0"
    if style == "binary" and (abs(value) < 1024 or value.denominator != 1):
        style = "decimal"
    if style == "binary":
        amount, power = int(value), 0
        while amount % 1024 == 0 and power < 6:
            amount, power = amount // 1024, power + 1
        return f"{amount}{_BINARY_SUFFIX[power]}"
    # base 10: an integer mantissa and an exponent that is a multiple of three
    power = 0
    while value.denominator != 1:
        value, power = value * 10, power - 1
    amount = int(value)
    while amount != 0 and amount % 10 == 0:
        amount, power = amount // 10, power + 1
    while power % 3:
        amount, power = amount * 10, power - 1
    if style == "decimal" and power in _DECIMAL_SUFFIX:
        return f"{amount}{_DECIMAL_SUFFIX[power]}"
    return f"{amount}e{power}" if power else str(amount)


def _quantities(resources: Any) -> dict[str, str]:
    return (
        {k: canonical_quantity(str(v)) for k, v in resources.items()}
        if isinstance(resources, Mapping)
        else {}
    )


def _map(value: Any) -> dict[str, Any]:
    """`value` when it is a map, else an empty one (Go's zero struct)."""
    return dict(value) if isinstance(value, Mapping) else {}


def _keep(source: Mapping[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
    """The keys Go's struct knows, omitempty."""
    return {k: copy.deepcopy(source[k]) for k in keys if source.get(k) not in (None, "", [], {})}


def _go_selector(selector: Mapping[str, Any]) -> dict[str, Any]:
    out = _keep(selector, ("matchLabels",))
    expressions = [
        {**_keep(e, ("key", "operator", "values"))}
        for e in selector.get("matchExpressions") or []
        if isinstance(e, Mapping)
    ]
    if expressions:
        out["matchExpressions"] = expressions
    return out


_PVC_SPEC_KEYS = (
    "accessModes",
    "selector",
    "volumeName",
    "storageClassName",
    "volumeMode",
    "dataSource",
    "dataSourceRef",
    "volumeAttributesClassName",
)
_OBJECT_META_KEYS = (
    "name",
    "generateName",
    "namespace",
    "uid",
    "resourceVersion",
    "labels",
    "annotations",
    "ownerReferences",
    "finalizers",
)


def _go_claim_template(template: Any) -> dict[str, Any]:
    """A corev1.PersistentVolumeClaim through encoding/json: metadata, spec.resources and status
    are structs (never omitted); ObjectMeta's zero creationTimestamp marshals as null (the
    CRD prunes it)."""
    template = _map(template)
    out = _keep(template, ("apiVersion", "kind"))
    meta = _map(template.get("metadata"))
    out["metadata"] = {**_keep(meta, _OBJECT_META_KEYS), "creationTimestamp": None}
    spec = _map(template.get("spec"))
    claim = _keep(spec, _PVC_SPEC_KEYS)
    if "storageClassName" in spec and spec["storageClassName"] == "":
        claim["storageClassName"] = ""  # a *string: "" is not omitted
    resources = _map(spec.get("resources"))
    claim["resources"] = {
        k: _quantities(resources[k]) for k in ("limits", "requests") if resources.get(k)
    }
    out["spec"] = dict(sorted(claim.items()))
    status = template.get("status")
    out["status"] = copy.deepcopy(dict(status)) if isinstance(status, Mapping) else {}
    return out


def _go_source(value: Any) -> dict[str, Any]:
    source = _map(value)
    out: dict[str, Any] = {"type": source.get("type", ""), "uri": source.get("uri", "")}
    if source.get("options"):
        out["options"] = dict(source["options"])
    return out


def _go_resources(value: Any) -> dict[str, Any]:
    resources = _map(value)
    return {k: _quantities(resources[k]) for k in ("limits", "requests") if resources.get(k)}


def _go_claim_ref(value: Any) -> dict[str, Any] | None:
    return _keep(value, ("name", "subPath")) if isinstance(value, Mapping) else None


#: How the Go struct encodes the spec fields that are not plain `omitempty` ones (None: left
#: out). A struct is never omitted, even empty; `share` is a bool.
_GO_FIELDS: dict[str, Callable[[Any], Any]] = {
    "source": _go_source,
    "share": lambda value: True if value else None,
    "shareToNamespaceSelector": lambda value: (
        _go_selector(value) if isinstance(value, Mapping) else None
    ),
    "volumeClaimTemplate": _go_claim_template,
    "volumeClaimRef": _go_claim_ref,  # main only (a pointer); pruned by v0.1.6's CRD
    "mountOptions": lambda value: _keep(_map(value), ("path", "mode", "uid", "gid")),
    "resources": _go_resources,  # main only (a struct); pruned by v0.1.6's CRD
}


def go_spec(spec: Mapping[str, Any]) -> dict[str, Any]:
    """The Dataset spec as the real controller's full Update sends it back: the DatasetSpec
    struct through encoding/json. Unknown fields go, omitempty scalars go (`share: false`, an
    empty `options`), structs stay even when empty (`mountOptions: {}`, `resources: {}`,
    `volumeClaimTemplate: {metadata, spec: {resources: {}}, status: {}}`), quantities are
    canonical. The API server then prunes what its CRD does not know and applies defaults
    (mountOptions' path, mode, uid and gid).

    The known fields are modelfs's DatasetSpec's (`SPEC_KEYS`), which mirrors the Go struct
    field for field, the ones modelfs does not manage included: a field added there is carried
    here too, as an omitempty one unless `_GO_FIELDS` says otherwise."""
    out: dict[str, Any] = {}
    for key in SPEC_KEYS:
        encode = _GO_FIELDS.get(key)
        if encode is None:
            value = copy.deepcopy(spec[key]) if spec.get(key) else None
        else:
            value = encode(spec.get(key))
        if value is not None:
            out[key] = value
    return out


def go_quote(value: str) -> str:
    """Go's %q (strconv.Quote) of a string."""
    escapes = {'"': '\\"', "\\": "\\\\", "\a": "\\a", "\b": "\\b", "\f": "\\f"}
    escapes.update({"\n": "\\n", "\r": "\\r", "\t": "\\t", "\v": "\\v"})
    out = []
    for char in value:
        if char in escapes:
            out.append(escapes[char])
        elif char.isprintable() or char == " ":
            out.append(char)
        elif ord(char) < 0x80:
            out.append(f"\\x{ord(char):02x}")
        elif ord(char) <= 0xFFFF:
            out.append(f"\\u{ord(char):04x}")
        else:
            out.append(f"\\U{ord(char):08x}")
    return '"' + "".join(out) + '"'


#: RE2's \s (what the controller's regexp.MustCompile(`\s`) matches): ASCII whitespace, no \v.
_GO_SPACE = re.compile(r"[\t\n\f\r ]")


def go_not_found(kind: str, name: str, group: str = "") -> str:
    """A NotFound error from controller-runtime's cache reader: it names the Kind (not the
    resource), e.g. `PersistentVolumeClaim "x" not found`, `Job.batch "x" not found`."""
    return f'{kind}.{group} "{name}" not found' if group else f'{kind} "{name}" not found'


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


def configmap_name(dataset_name: str) -> str:
    return f"dataset-{dataset_name}-config"


def _spec(ds: Mapping[str, Any]) -> dict[str, Any]:
    spec = ds.get("spec")
    return spec if isinstance(spec, dict) else {}


def _source(ds: Mapping[str, Any]) -> dict[str, Any]:
    source = _spec(ds).get("source")
    return source if isinstance(source, dict) else {}


def source_type(ds: Mapping[str, Any]) -> str:
    return str(_source(ds).get("type", ""))


def source_uri(ds: Mapping[str, Any]) -> str:
    return str(_source(ds).get("uri", ""))


def source_options(ds: Mapping[str, Any]) -> dict[str, str]:
    options = _source(ds).get("options")
    return {str(k): str(v) for k, v in options.items()} if isinstance(options, dict) else {}


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
    it. Each `*_error` is the failed read's Go client text."""

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
    configmap: Mapping[str, Any] | None = None  # CONDA: dataset-<name>-config, if it exists
    #: loader Jobs by name: those of the rounds `jobs_to_read(ds)` names, when they exist
    jobs: Mapping[str, JobView] = field(default_factory=dict)
    source: SourceObservation | None = None  # REFERENCE only
    nfs_pv: Mapping[str, Any] | None = None  # NFS only: the PV named nfs_pv_name(ds)


def jobs_to_read(ds: Mapping[str, Any]) -> list[str]:
    """The loader Jobs a reconcile may read: the spec's round, the round in processing and the
    last round that succeeded."""
    status = _map(ds.get("status"))
    rounds = {data_sync_round(ds), status.get("inProcessingRound"), status.get("lastSucceedRound")}
    name = ds["metadata"]["name"]
    return [job_name(name, r) for r in sorted(r for r in rounds if isinstance(r, int) and r > 0)]


# --------------------------------------------------------------------------- the plan


@dataclass
class Plan:
    """What to do, in this order: delete, send `update` (the full Dataset), create, update,
    patch labels, write the status; then reconcile again after `requeue_after` seconds if set.

    With `resume` set, the plan ends at `update`: send it, then call `reconcile(response, obs,
    resumed=True)` for the rest of the chain (the real controller carries on with the response,
    its status zeroed to the stored one)."""

    status: dict[str, Any]
    status_changed: bool = False
    update: dict[str, Any] | None = None  # PUT of the Dataset (finalizers, spec write-back)
    resume: bool = False
    creates: list[dict[str, Any]] = field(default_factory=list)
    updates: list[dict[str, Any]] = field(default_factory=list)  # PUT (a CONDA ConfigMap)
    deletes: list[tuple[str, str, str | None, str]] = field(default_factory=list)
    label_patches: list[tuple[str, str, dict[str, str | None]]] = field(default_factory=list)
    requeue_after: float | None = None
    #: the Job created this time, for the fake job controller to time
    started_job: str | None = None
    notes: list[str] = field(default_factory=list)

    def requeue(self, after: float) -> None:
        after = max(after, 0.0)
        self.requeue_after = after if self.requeue_after is None else min(self.requeue_after, after)


class _StepError(Exception):
    pass


class _Resume(Exception):
    """Stop the chain here: the runtime sends the Update and resumes with its response."""


# --------------------------------------------------------------------------- reconcile


Step = Callable[[dict[str, Any], Observed, Plan, int], None]


def reconcile(
    ds: Mapping[str, Any],
    obs: Observed,
    *,
    backoff_limit: int = DEFAULT_BACKOFF_LIMIT,
    resumed: bool = False,
) -> Plan:
    """One reconcile of the real controller. Never raises on a malformed Dataset: that is a
    Config condition. `resumed`: carry on after the finalizer Update, with its response as
    `ds` (the steps Config and finalizer are behind)."""
    now = obs.now
    raw_status = ds.get("status")
    old_status: dict[str, Any] = raw_status if isinstance(raw_status, dict) else {}
    status: dict[str, Any] = copy.deepcopy(old_status)
    if not isinstance(status.get("conditions"), list):
        status["conditions"] = []
    plan = Plan(status=status)
    working = copy.deepcopy(dict(ds))
    working["status"] = status

    if is_deleting(ds):
        _reconcile_deletion(working, obs, plan)
        if plan.update is not None:
            return plan  # the Update lets the Dataset go: its status is never written
    else:
        steps: list[tuple[str, Step]] = [
            (COND_CONFIG, _validate),
            ("", _finalizer),
            (COND_PVC, _pvc),
            (COND_CONFIGMAP, _configmap),
            (COND_JOB, _job),
            (COND_JOBSTATUS, _job_status),
        ]
        for type_, step in steps[2:] if resumed else steps:
            try:
                step(working, obs, plan, backoff_limit)
            except _Resume:
                plan.status = _omit_empty(copy.deepcopy(old_status))
                return plan
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
    if not is_deleting(ds) and plan.status.get("phase") == PROCESSING:
        plan.requeue(POLL_SECONDS)  # a running round is polled: Jobs are not watched
    return plan


def update_body(ds: Mapping[str, Any], finalizers: list[str] | None) -> dict[str, Any]:
    """The real controller's r.Update(ctx, ds): the object as read (resourceVersion and all),
    finalizers replaced, the spec through Go's structs (`go_spec`)."""
    meta = copy.deepcopy(dict(ds["metadata"]))
    if finalizers:
        meta["finalizers"] = list(finalizers)
    else:
        meta.pop("finalizers", None)
    return {"apiVersion": API_VERSION, "kind": KIND, "metadata": meta, "spec": go_spec(_spec(ds))}


def _reconcile_deletion(ds: dict[str, Any], obs: Observed, plan: Plan) -> None:
    status = ds["status"]
    try:
        _pvc_deletion(ds, obs, plan)
    except _StepError as error:
        set_condition(status["conditions"], COND_PVC, str(error), obs.now)
        plan.notes.append(f"PVC: {error}")
        return
    set_condition(status["conditions"], COND_PVC, None, obs.now)
    plan.update = update_body(ds, None)  # ds.Finalizers = nil: every finalizer, not only its own


def _pvc_deletion(ds: dict[str, Any], obs: Observed, plan: Plan) -> None:
    namespace = ds["metadata"]["namespace"]
    if isinstance(_spec(ds).get("volumeClaimRef"), dict):
        _claim_ref(ds, obs)  # main reads (never deletes) a referenced claim, even now
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


def _validate(ds: dict[str, Any], obs: Observed, plan: Plan, backoff_limit: int) -> None:
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
            namespace = ds["metadata"]["namespace"]
            if obs.namespace is None:
                raise _StepError(
                    f"fetch current namespace {namespace} error: "
                    f"{obs.namespace_error or go_not_found('Namespace', namespace)}"
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
    # main only (v0.1.6 has no volumeClaimRef; its CRD prunes one)
    ref = spec.get("volumeClaimRef")
    if ref is not None and spec.get("volumeClaimTemplate"):
        raise _StepError("volumeClaimRef and volumeClaimTemplate cannot be both set")
    if isinstance(ref, dict):
        sub_path = str(ref.get("subPath") or "")
        if sub_path.startswith("/"):
            raise _StepError(f"subPath should not start with '/', got: {sub_path}")
        if ".." in sub_path:
            raise _StepError(f"subPath should not contain '..', got: {sub_path}")


def _finalizer(ds: dict[str, Any], obs: Observed, plan: Plan, backoff_limit: int) -> None:
    if FINALIZER not in (ds["metadata"].get("finalizers") or []):
        plan.update = update_body(ds, [FINALIZER])  # replaces whatever was there
        plan.resume = True
        raise _Resume


def _claim_ref(ds: dict[str, Any], obs: Observed) -> None:
    ref = _spec(ds)["volumeClaimRef"]
    namespace = ds["metadata"]["namespace"]
    where = f"{namespace}/{ref.get('name')}"
    if obs.pvc is None:
        raise _StepError(
            f"get pvc {where} for dataset {namespace}/{ds['metadata']['name']} error: "
            + go_not_found("PersistentVolumeClaim", str(ref.get("name")))
        )
    phase = (obs.pvc.get("status") or {}).get("phase", "")
    if phase != "Bound":
        raise _StepError(f"pvc {where} is not bound yet, current phase: {phase}")


def _pvc(ds: dict[str, Any], obs: Observed, plan: Plan, backoff_limit: int) -> None:
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
                f"{src_meta['namespace']}/{src_meta['name']} error: "
                + (src.pvc_error or go_not_found("PersistentVolumeClaim", src_pvc_name))
            )
        volume = (src.pvc.get("spec") or {}).get("volumeName")
        if not volume:
            raise _StepError(f"pvc {src_meta['namespace']}/{src_pvc_name} has no volume")
        if src.pv is None:
            raise _StepError(
                f"get pv {volume} for source dataset {src_meta['namespace']}/{src_meta['name']}"
                f" error: {src.pv_error or go_not_found('PersistentVolume', volume)}"
            )
        if not src.clone_exists:
            plan.creates.append(_clone_pv(ds, src.pv))
        pvc_spec = copy.deepcopy(dict(src.pvc.get("spec") or {}))
        pvc_spec["volumeName"] = clone_pv_name(ds)
        status["lastSucceedRound"] = data_sync_round(ds)
        status["readOnly"] = True
    elif kind == "PVC":
        if obs.pvc is None:
            raise _StepError(go_not_found("PersistentVolumeClaim", pvc_name))
        owner = (obs.pvc["metadata"].get("labels") or {}).get(NAME_LABEL)
        if owner is not None and owner != name:
            raise _StepError(f"pvc {pvc_name} is not belong to dataset {namespace}/{name}")
        if owner is None:
            plan.label_patches.append((namespace, pvc_name, {NAME_LABEL: name}))
        status["pvcName"] = pvc_name
        return  # never sets lastSucceedRound; the phase of a PVC Dataset is always READY
    elif kind == "NFS":
        pv_name = nfs_pv_name(ds)
        if obs.nfs_pv is not None:
            if (obs.nfs_pv["metadata"].get("labels") or {}).get(NAME_LABEL) != name:
                raise _StepError(f"pv {pv_name} is not belong to dataset {namespace}/{name}")
        else:
            plan.creates.append(_nfs_pv(ds))
        status["lastSucceedRound"] = data_sync_round(ds)  # every reconcile: a raised round too
        force_class, volume_override = "nfs-csi", pv_name

    status["pvcName"] = pvc_name
    if pvc_spec is None:
        pvc_spec = _go_claim_template(spec.get("volumeClaimTemplate"))["spec"]
        if not pvc_spec.get("accessModes"):
            pvc_spec["accessModes"] = ["ReadWriteMany"]
        pvc_spec.setdefault("volumeMode", "Filesystem")
        requests = pvc_spec["resources"].setdefault("requests", {})
        if canonical_quantity(str(requests.get("storage") or "0")) == "0":
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
    mode = str((_spec(ds).get("mountOptions") or {}).get("mode") or "")
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


def _conda_files(ds: Mapping[str, Any]) -> dict[str, str]:
    """The CONDA options the controller moves into its ConfigMap: option -> file name."""
    options = source_options(ds)
    return {k: f for k, f in CONDA_FILES.items() if options.get(k, "").strip()}


def _configmap(ds: dict[str, Any], obs: Observed, plan: Plan, backoff_limit: int) -> None:
    """CONDA only: the ConfigMap `dataset-<name>-config` holds the environment files the loader
    reads (created, then updated on every reconcile with the files the options give)."""
    if source_type(ds) != "CONDA":
        return
    options = source_options(ds)
    data = {file: options[option] for option, file in _conda_files(ds).items()}
    meta = ds["metadata"]
    if obs.configmap is None:
        body: dict[str, Any] = {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": configmap_name(meta["name"]),
                "namespace": meta["namespace"],
                "labels": copied_labels(ds),
                "ownerReferences": [owner_reference(ds)],
            },
        }
        if data:
            body["data"] = data
        plan.creates.append(body)
        return
    merged = {**(obs.configmap.get("data") or {}), **data}
    if merged != (obs.configmap.get("data") or {}):
        updated = copy.deepcopy(dict(obs.configmap))
        updated["data"] = merged
        plan.updates.append(updated)


def _job(ds: dict[str, Any], obs: Observed, plan: Plan, backoff_limit: int) -> None:
    if source_type(ds) not in PRELOAD_TYPES:
        return
    status, meta = ds["status"], ds["metadata"]
    round_ = data_sync_round(ds)
    if round_ <= (status.get("lastSucceedRound") or 0):
        return
    status["inProcessing"] = True
    status["inProcessingRound"] = round_
    name = job_name(meta["name"], round_)
    if name not in obs.jobs:  # upstream creates every time and ignores AlreadyExists
        plan.creates.append(loader_job(ds, round_, backoff_limit))
        plan.started_job = name


def loader_job(ds: Mapping[str, Any], round_: int, backoff_limit: int) -> dict[str, Any]:
    """A batch/v1 Job shaped like the real controller's (with the Helm chart's job spec).
    `spec.managedBy` keeps a real job controller off it: the fake decides its outcome
    (`job_verdict`)."""
    meta, spec = ds["metadata"], _spec(ds)
    kind = source_type(ds)
    options = source_options(ds)
    requests, limits = _TYPE_RESOURCES.get(kind, ({}, {}))
    requests, limits = dict(requests), dict(limits)
    gpu = _GPU_RESOURCES.get(options.get("gpuType", ""), {})
    requests.update(gpu)
    limits.update(gpu)
    resources = {"requests": dict(_CHART_RESOURCES[0]), "limits": dict(_CHART_RESOURCES[1])}
    if requests:
        resources["requests"] = requests
    if limits:
        resources["limits"] = limits

    volumes: list[dict[str, Any]] = []
    mounts: list[dict[str, Any]] = []
    if kind == "CONDA":
        files = _conda_files(ds)
        for option in files:
            del options[option]
        options.pop("gpuType", None)
        if files:
            items = [{"key": f, "path": f} for f in files.values()]
            volumes.append(
                {
                    "name": "dataset-config-conda",
                    "configMap": {"name": configmap_name(meta["name"]), "items": items},
                }
            )
            mounts.append(
                {"name": "dataset-config-conda", "mountPath": CONDA_MOUNT, "readOnly": True}
            )
    if spec.get("secretRef"):
        volumes.append({"name": "dataset-secret", "secret": {"secretName": spec["secretRef"]}})
        mounts.append({"name": "dataset-secret", "mountPath": SECRET_MOUNT, "readOnly": True})
    claim = _map(ds.get("status")).get("pvcName") or ""
    volumes.append({"name": "dataset-pvc", "persistentVolumeClaim": {"claimName": claim}})
    mounts.append({"name": "dataset-pvc", "mountPath": DATA_MOUNT})

    args = [kind, source_uri(ds)]
    for key, value in sorted(options.items()):  # Go map order: any order
        args.append(f"--options={key}={go_quote(value) if _GO_SPACE.search(value) else value}")
    mount = _map(spec.get("mountOptions"))
    if mount.get("path"):
        args.append(f"--mount-path={mount['path']}")
    if mount.get("mode"):
        args.append(f"--mount-mode={mount['mode']}")
    args.append(f"--mount-uid={mount.get('uid') or 0}")
    args.append(f"--mount-gid={mount.get('gid') or 0}")
    args.append(f"--mount-root={DATA_MOUNT}")

    metadata: dict[str, Any] = {
        "name": job_name(meta["name"], round_),
        "namespace": meta["namespace"],
        "labels": copied_labels(ds),
        "ownerReferences": [owner_reference(ds)],
    }
    if copied_annotations(ds):
        metadata["annotations"] = copied_annotations(ds)
    container = {
        "name": LOADER_CONTAINER,
        "image": LOADER_IMAGE,
        "command": [LOADER_COMMAND],
        "args": args,
        "resources": resources,
        "volumeMounts": mounts,
    }
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": metadata,
        "spec": {
            "managedBy": JOB_MANAGED_BY,
            "backoffLimit": backoff_limit,
            "completionMode": "NonIndexed",
            "completions": 1,
            "parallelism": 1,
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "securityContext": {"runAsUser": 0},
                    "containers": [container],
                    "volumes": volumes,
                }
            },
        },
    }


def _job_status(ds: dict[str, Any], obs: Observed, plan: Plan, backoff_limit: int) -> None:
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
                raise _StepError(go_not_found("Job", name, "batch"))
            status["lastSyncTime"] = view.completion_time or created
        else:
            status["lastSyncTime"] = created
        return
    round_ = status.get("inProcessingRound") or 0
    name = job_name(meta["name"], round_)
    view = obs.jobs.get(name)
    if view is None or plan.started_job == name:
        # created just now: the informer cache has not seen it yet
        # (docs/dataset-controller.md#conditions)
        raise _StepError(go_not_found("Job", name, "batch"))
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
    elif view.failed:  # no endTime, no message: the Job's reason is copied nowhere
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
    message: str = ""


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
    if timings.fails(round_):
        return JobVerdict(
            done=True, message=f"round {round_} fails ({ANN_FAIL_ROUNDS}: fake loader failure)"
        )
    return JobVerdict(done=True, succeeded=True)


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
    message = f"Job has reached the specified backoff limit: {verdict.message or 'fake failure'}"
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
    old = _map(ds.get("status"))
    status = copy.deepcopy(old) if old else {}
    conditions = status.get("conditions")
    if not isinstance(conditions, list):
        conditions = status["conditions"] = []
    set_condition(conditions, COND_CONFIG, error, now)
    status["phase"] = FAILED
    return _omit_empty(status)
