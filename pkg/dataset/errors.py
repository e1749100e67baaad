"""The one error type of spec resolution: it always names the object and the field at fault."""

from __future__ import annotations

from enum import StrEnum


class Reason(StrEnum):
    """Condition reasons a resolution error is reported with."""

    INVALID_CONFIG = "InvalidConfig"
    INVALID_REPO = "InvalidRepo"
    INVALID_SPEC = "InvalidSpec"
    INVALID_STORAGE = "InvalidStorage"
    VERSION_NOT_FOUND = "VersionNotFound"
    MODEL_MISMATCH = "ModelMismatch"
    SOURCE_MISMATCH = "SourceMismatch"
    SECRET_NOT_USED = "SecretNotUsed"


class ResolutionError(ValueError):
    """ModelSource + Model + ModelSync cannot become a Dataset; `field` says where to look."""

    def __init__(self, kind: str, field: str, message: str, reason: Reason) -> None:
        self.kind = kind
        self.field = field
        self.message = message
        self.reason = reason
        super().__init__(f"{kind} {field}: {message}")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ResolutionError) and str(self) == str(other)

    def __hash__(self) -> int:
        return hash(str(self))
