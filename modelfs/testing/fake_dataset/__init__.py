"""A fake of the BaizeAI/dataset controller for modelfs's end-to-end tests and `modelfs sandbox`.

It does what docs/dataset-controller.md says the real one (v0.1.6, its Helm chart's config) does, as
a client can observe it: phases (no status -> PROCESSING -> READY, never PENDING, no transient
FAILED), conditions in the order PVC, ConfigMap, Job, JobStatus, Config with their `<Type>Ready`
reasons and Go client error texts, the brief `JobStatus=False` of a new round, the spec
write-back of its finalizer Update, rounds polled every 5 s, round statuses, the finalizer it
replaces, the label `baize.io/dataset-name` and the Dataset's labels and annotations on the PVC
and the loader Jobs (whose shape, args and mounts are the real ones), REFERENCE, PVC and NFS
rules, deletion. `e2e/test_conformance.py` runs one scenario on both and compares.

What it adds: the loader Jobs' outcome (no pods run), set through annotations (Dataset, copied
onto its Jobs, then Namespace); the pod simulator of `modelfs.testing.dataset_engine` honours
the same two:

    fake.dataset.baizeai.io/fail-rounds: "1,3" | "all"
    fake.dataset.baizeai.io/round-duration: "2s"

- `logic`: the pure state machine (`reconcile`, `go_spec`, `job_verdict`, `selector_matches`...).
- `controller`: `FakeDataset(api, Settings(...))`, the asyncio runtime (in-process).
- `process`: `FakeDatasetController(kubeconfig, ...)`, the same as a child process.
- `python -m modelfs.testing.fake_dataset --kubeconfig PATH ...`: the command line.
"""

from modelfs.testing.fake_dataset.controller import SANDBOX_TIMINGS, FakeDataset, Settings
from modelfs.testing.fake_dataset.logic import (
    ANN_FAIL_ROUNDS,
    ANN_ROUND_DURATION,
    FINALIZER,
    NAME_LABEL,
    Timings,
)
from modelfs.testing.fake_dataset.process import FakeDatasetController, FakeDatasetError

__all__ = [
    "ANN_FAIL_ROUNDS",
    "ANN_ROUND_DURATION",
    "FINALIZER",
    "NAME_LABEL",
    "SANDBOX_TIMINGS",
    "FakeDataset",
    "FakeDatasetController",
    "FakeDatasetError",
    "Settings",
    "Timings",
]
