"""What the operator does on the API, declared next to the code that does it.

`modelfs manifests` generates the ClusterRole in config/rbac and the Helm chart's rules
(charts/modelfs/templates/_rules.tpl) from these rules, and tests check that they cover every call
the controllers make and nothing more (kubebuilder's RBAC markers, as data). Each rule says why it
exists and its scope; the README lists them.

Scope: a `namespaced` rule is only ever used inside the namespace of the object being reconciled
(a watched namespace), so when the operator watches a namespace list (`modelfs run -n a -n b`, the
chart's `watchNamespaces`) it goes into a Role and RoleBinding per watched namespace. A `cluster`
rule is on a cluster-scoped resource, which no Role can grant, and stays in a ClusterRole in every
mode. With `-A` (kopf lists and watches each kind across all namespaces with one request, which
only a ClusterRole can allow) every rule is in the ClusterRole; docs/security.md says what that
means and why.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from modelfs.api.v1 import GROUP
from modelfs.controllers.kinds import RECONCILED
from modelfs.pkg.dataset import DATASET_GROUP, DATASET_PLURAL

Scope = Literal["namespaced", "cluster"]
SCOPES: tuple[Scope, ...] = ("namespaced", "cluster")


@dataclass(frozen=True)
class Rule:
    group: str
    resources: tuple[str, ...]
    verbs: tuple[str, ...]
    scope: Scope
    why: str


WATCH = ("get", "list", "watch")

OWN_KINDS = tuple(kind.plural for kind in RECONCILED)
"""modelfs's own kinds, from their descriptors: a new kind gets its rules with no edit here."""

RULES: tuple[Rule, ...] = (
    Rule(
        GROUP,
        OWN_KINDS,
        (*WATCH, "patch"),
        "namespaced",
        "watch modelfs's objects; patch adds and removes the finalizer of ModelSyncs with "
        "deletionPolicy Retain",
    ),
    Rule(
        GROUP,
        tuple(f"{plural}/status" for plural in OWN_KINDS),
        ("patch",),
        "namespaced",
        "write the status of modelfs's objects",
    ),
    Rule(
        DATASET_GROUP,
        (DATASET_PLURAL,),
        (*WATCH, "create", "patch", "delete"),
        "namespaced",
        "create Datasets by server-side apply (create + patch), mirror their status, revert "
        "hand edits, orphan them for deletionPolicy Retain, delete revoked references; always in "
        "the namespace of the ModelSync or ModelReference they are for",
    ),
    Rule(
        "",
        ("secrets",),
        ("get",),
        "namespaced",
        "read the Secret a ModelSource names, in the ModelSource's namespace: its key names, to "
        "check them; its values only when a catalog lookup starts, sent to the source's own "
        "endpoint and kept nowhere (get only: no list or watch of Secrets)",
    ),
    Rule(
        "",
        ("persistentvolumeclaims",),
        ("get",),
        "namespaced",
        "check, before its Dataset is made, that the claim a PVC source names exists in the "
        "ModelSync's namespace (the catalog step; get only: no list or watch of claims)",
    ),
    Rule(
        "",
        ("events",),
        ("create",),
        "namespaced",
        "post events on modelfs's objects, in their namespace (create only: modelfs posts new "
        "events, never patches one)",
    ),
    Rule(
        "",
        ("namespaces",),
        ("list", "watch"),
        "cluster",
        "evaluate Model.spec.share.namespaceSelector against a consumer namespace's labels, and "
        "see a namespace being deleted; kopf watches namespaces (cluster-scoped) in every mode",
    ),
    Rule(
        "apiextensions.k8s.io",
        ("customresourcedefinitions",),
        ("list", "watch"),
        "cluster",
        "kopf discovers the CRDs it serves and notices CRDs installed after it started (the "
        "Dataset CRD, say)",
    ),
)


LEADER_ELECTION_RULES: tuple[Rule, ...] = (
    Rule(
        "coordination.k8s.io",
        ("leases",),
        ("get", "create", "update", "list", "watch"),
        "namespaced",
        "leader election: read, take and renew the operator's Lease (update carries the "
        "resourceVersion read, so two replicas cannot both win) and watch it, so that a standby "
        "takes over as soon as the leader releases it; in the operator's own namespace only, "
        "in a Role of its own, whatever namespaces it watches",
    ),
)
"""The rules of a Role in the operator's own namespace (not a watched one): kubebuilder's
`leader_election_role`."""


def rules_of(scope: Scope) -> tuple[Rule, ...]:
    """The rules of one scope, in RULES' order."""
    return tuple(rule for rule in RULES if rule.scope == scope)
