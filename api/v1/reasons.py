"""Every reason modelfs puts on a condition or an Event, defined once.

A reason is a CamelCase word a user can grep for; docs/troubleshooting.md says where each
appears, what it means and the fix (from modelfs/troubleshooting.py, which a test holds to this
module: a new reason needs an entry there). The reasons of a spec that cannot resolve live
with their checks (`pkg.dataset.errors.Reason`).
"""

from __future__ import annotations

# -- verdicts that all is well
READY = "Ready"
RESOLVED = "Resolved"
SOURCE_READY = "SourceReady"
DATASET_READY = "DatasetReady"

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
VERSION_NOT_FOUND = "VersionNotFound"
NOT_ALLOWED = "NotAllowed"

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
DATASET_DELETING = "DatasetDeleting"
DATASET_REVERTED = "DatasetReverted"
DATASET_UPDATED = "DatasetUpdated"
DATASET_RETAINED = "DatasetRetained"
NO_LOADER_JOB = "NoLoaderJob"

# -- where a Dataset's download stands (a Dataset phase, as a reason)
PENDING = "Pending"
PROCESSING = "Processing"
FAILED = "Failed"

# -- download rounds
ROUND_REQUESTED = "Requested"
"""What starts a round: a raised spec.syncRound."""
ROUND_SCHEDULED = "Scheduled"
"""What starts a round: spec.schedule is due."""
ROUND_RETRY = "Retry"
"""What starts a round: a failed round's backoff ran out."""
ROUND_STARTED = "RoundStarted"
ROUND_RETRIED = "RoundRetried"
ROUND_NOT_STARTED = "RoundNotStarted"
ROUND_FAILED = "RoundFailed"
RETRY_LIMIT_REACHED = "RetryLimitReached"
SYNCED = "Synced"

# -- the catalog: what the source's own catalog said before a download (the Catalog condition)
CATALOG_FOUND = "CatalogFound"
"""Catalog=True: the version is there; status.catalog says what the download fetches."""
NOTHING_TO_LOOK_UP = "NothingToLookUp"
"""Catalog=True: the type has no catalog (NFS, CONDA, REFERENCE)."""
SCHEDULE_SKIPPED = "ScheduleSkipped"
"""Catalog=True: a schedule tick started no round, the upstream is as the last round left it."""
CATALOG_PENDING = "CatalogPending"
"""Ready=False under Required: the lookup has not answered yet."""
# Refusals: Catalog=False and Ready=False, no Dataset created, no new round started.
REPO_NOT_FOUND = "RepoNotFound"
REVISION_NOT_FOUND = "RevisionNotFound"
GATED_REPO = "GatedRepo"
NO_FILES_MATCHED = "NoFilesMatched"
INSUFFICIENT_STORAGE = "InsufficientStorage"
SOURCE_OBJECT_NOT_FOUND = "SourceObjectNotFound"
"""An S3 prefix with no object, an HTTP 404, a PVC source's claim missing from the namespace."""
REF_NOT_FOUND = "RefNotFound"
# Catalog=Unknown: the catalog could not be asked (BestEffort goes ahead, Required waits).
CATALOG_UNREACHABLE = "CatalogUnreachable"
CATALOG_TIMEOUT = "CatalogTimeout"
CATALOG_SERVER_ERROR = "CatalogServerError"
CATALOG_RATE_LIMITED = "CatalogRateLimited"
CATALOG_DISABLED = "CatalogDisabled"

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
