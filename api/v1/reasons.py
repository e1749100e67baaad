"""Every reason modelfs puts on a condition or an Event, defined once.

A reason is a CamelCase word a user can grep for; docs/troubleshooting.md explains each one. The
reasons of a spec that cannot resolve live with their checks (`pkg.dataset.errors.Reason`).
"""

from __future__ import annotations

# -- references between objects
MODEL_NOT_FOUND = "ModelNotFound"
SOURCE_NOT_FOUND = "SourceNotFound"
SOURCE_NOT_READY = "SourceNotReady"
SOURCE_NOT_SHARED = "SourceNotShared"
SOURCE_LOST = "SourceLost"
INVALID_MODEL_REF = "InvalidModelRef"
INVALID_SOURCE_REF = "InvalidSourceRef"
INVALID_VERSION = "InvalidVersion"
INVALID_SHARE = "InvalidShare"
INVALID_SELECTOR = "InvalidSelector"
DUPLICATE = "DuplicateModelSync"
NO_MODELSYNC = "NoModelSync"

# -- Secrets
SECRET_MISSING = "SecretMissing"
SECRET_KEY_MISSING = "SecretKeyMissing"

# -- sharing (ModelReference)
SHARED = "Shared"
NOT_SHARED = "NotShared"
NAMESPACE_NOT_SELECTED = "NamespaceNotSelected"

# -- Datasets
DATASET_CONFLICT = "DatasetConflict"
DATASET_ADOPTED = "DatasetAdopted"
DATASET_REJECTED = "DatasetRejected"
DATASET_SHARE_WITHDRAWN = "DatasetShareWithdrawn"
DATASET_CREATED = "DatasetCreated"
DATASET_DELETED = "DatasetDeleted"
NO_LOADER_JOB = "NoLoaderJob"

# -- the runner: failures of a reconcile itself
RECONCILE_ERROR = "ReconcileError"
"""A bug: the reconcile raised something unexpected (the log has the traceback)."""
API_FORBIDDEN = "Forbidden"
"""403: the operator's ServiceAccount may not make a request it needs (an RBAC rule is missing)."""
API_INVALID = "Invalid"
"""422: the API server refused an object the operator wrote."""
API_BAD_REQUEST = "BadRequest"
"""400: the API server refused a request the operator made."""
API_NOT_FOUND = "NotFound"
"""404: something the operator wrote to is gone (its namespace is being deleted, say)."""
