"""What a reconcile returns or raises, as controller-runtime's `Result` and `TerminalError`.

A reconcile returns a `Result` (look again after N seconds, or done) or raises. What it raises
decides what happens next (`controllers.runner`):

- `TerminalError`, or an API error retrying cannot fix (400, 403, 404, 422): Ready=False with
  the reason and one Warning event; retried after 5 s, then twice as late each time up to the
  longest backoff (5 min), or at once when the object or one of its inputs changes (a watch
  event adds the key again).
- An API error retrying may fix (409, 429, 5xx) or no answer at all: retried with backoff and a
  warning line; the status is not touched (it could not be written anyway during an outage).
- Anything else is a bug: its traceback is logged once, the object says ReconcileError.
"""

from __future__ import annotations

from dataclasses import dataclass

from modelfs.api.v1.reasons import API_BAD_REQUEST, API_FORBIDDEN, API_INVALID, API_NOT_FOUND
from modelfs.pkg.kube import ApiError

TERMINAL_STATUSES = {400: API_BAD_REQUEST, 403: API_FORBIDDEN, 404: API_NOT_FOUND, 422: API_INVALID}
"""HTTP statuses that mean the API server refused for good, by the reason shown for them."""


@dataclass(frozen=True)
class Result:
    """The outcome of a reconcile that did not raise."""

    requeue_after: float | None = None
    """Seconds after which to reconcile the key again; None: only when something changes."""

    @classmethod
    def done(cls) -> Result:
        return DONE

    @classmethod
    def after(cls, seconds: float | None) -> Result:
        return DONE if seconds is None else cls(seconds)


DONE = Result()


class TerminalError(Exception):
    """A failure that retrying as such cannot fix: shown on the object, retried less and
    less often (5 s up to the longest backoff) or when the object or its inputs change."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


def terminal(error: BaseException) -> TerminalError | None:
    """`error` as a TerminalError when it is one, or an API error that retrying cannot fix."""
    if isinstance(error, TerminalError):
        return error
    if isinstance(error, ApiError) and error.status in TERMINAL_STATUSES:
        reason = TERMINAL_STATUSES[error.status]
        advice = API_ADVICE.get(reason, "")
        return TerminalError(
            reason, f"the API server refused the operator's request: {error}{advice}"
        )
    return None


API_ADVICE = {
    API_FORBIDDEN: (
        "; the operator's ServiceAccount lacks an RBAC rule (see the chart's Roles), or an "
        "admission policy refuses the request"
    ),
}
