"""A fake of the BaizeAI/dataset controller for modelfs's end-to-end tests and `modelfs sandbox`.

It behaves like FACTS.md says the real one does (phases, conditions with their `<Type>Ready`
reasons, rounds and round statuses, the finalizer it replaces, the PVC and loader Jobs carrying
the Dataset's labels and annotations, REFERENCE rules, deletion), plus timing and failure
injection through annotations (Dataset first, then Namespace):

    fake.dataset.baizeai.io/fail-rounds: "1,3" | "all"
    fake.dataset.baizeai.io/round-duration: "2s"
    fake.dataset.baizeai.io/pending-duration: "1s"
    fake.dataset.baizeai.io/transient-failed-duration: "300ms"

- `logic`: the pure state machine (`reconcile`, `job_verdict`, `selector_matches`, ...).
- `controller`: `FakeDataset(api, Settings(...))`, the asyncio runtime (in-process).
- `process`: `FakeDatasetController(kubeconfig, ...)`, the same as a child process.
- `python -m modelfs.testing.fake_dataset --kubeconfig PATH ...`: the command line.
"""

from modelfs.testing.fake_dataset.controller import SANDBOX_TIMINGS, FakeDataset, Settings
from modelfs.testing.fake_dataset.logic import (
    ANN_FAIL_ROUNDS,
    ANN_PENDING_DURATION,
    ANN_ROUND_DURATION,
    ANN_TRANSIENT_FAILED,
    EVENT_CONCURRENT_ROUNDS,
    FINALIZER,
    NAME_LABEL,
    Timings,
)
from modelfs.testing.fake_dataset.process import FakeDatasetController, FakeDatasetError

__all__ = [
    "ANN_FAIL_ROUNDS",
    "ANN_PENDING_DURATION",
    "ANN_ROUND_DURATION",
    "ANN_TRANSIENT_FAILED",
    "EVENT_CONCURRENT_ROUNDS",
    "FINALIZER",
    "NAME_LABEL",
    "SANDBOX_TIMINGS",
    "FakeDataset",
    "FakeDatasetController",
    "FakeDatasetError",
    "Settings",
    "Timings",
]
