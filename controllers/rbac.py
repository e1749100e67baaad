"""What the operator does on the API, declared next to the code that does it.

`modelfs manifests` generates the ClusterRole in config/rbac from these rules, and a test checks
that they cover every call the controllers make and nothing more (kubebuilder's RBAC markers,
as data). Each rule says why it exists; the README lists them.
"""

from __future__ import annotations

from dataclasses import dataclass

from modelfs.api.v1 import GROUP
from modelfs.pkg.dataset import DATASET_GROUP, DATASET_PLURAL


@dataclass(frozen=True)
class Rule:
    group: str
    resources: tuple[str, ...]
    verbs: tuple[str, ...]
    why: str


WATCH = ("get", "list", "watch")

RULES: tuple[Rule, ...] = (
    Rule(
        GROUP,
        ("modelsources", "models", "modelsyncs", "modelreferences"),
        (*WATCH, "patch"),
        "watch modelfs's objects; patch adds and removes the finalizer of ModelSyncs with "
        "deletionPolicy Retain",
    ),
    Rule(
        GROUP,
        (
            "modelsources/status",
            "models/status",
            "modelsyncs/status",
            "modelreferences/status",
        ),
        ("patch",),
        "write the status of modelfs's objects",
    ),
    Rule(
        DATASET_GROUP,
        (DATASET_PLURAL,),
        (*WATCH, "create", "patch", "delete"),
        "create Datasets by server-side apply (create + patch), mirror their status, revert "
        "hand edits, orphan them for deletionPolicy Retain, delete revoked references",
    ),
    Rule(
        "",
        ("secrets",),
        ("get",),
        "read the key NAMES of the Secret a ModelSource names (get only: no list or watch of "
        "Secrets across the cluster)",
    ),
    Rule(
        "",
        ("events",),
        ("create", "patch"),
        "post events on modelfs's objects",
    ),
    Rule(
        "",
        ("namespaces",),
        WATCH,
        "evaluate Model.spec.share.namespaceSelector against a consumer namespace's labels",
    ),
    Rule(
        "apiextensions.k8s.io",
        ("customresourcedefinitions",),
        ("list", "watch"),
        "kopf discovers the CRDs it serves",
    ),
)
