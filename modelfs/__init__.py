"""modelfs: a Kubernetes operator for declarative LLM model weight management."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from importlib.abc import MetaPathFinder
from importlib.machinery import ModuleSpec
from types import ModuleType

__version__ = "0.1.0"

#: The extra that installs the test harness (control plane, Dataset controllers, sandbox,
#: pytest plugin): the distribution modelfs-testing, which provides `modelfs.testing`.
TESTING_EXTRA = "modelfs[testing]"


class _TestingHint(MetaPathFinder):
    """Asked last, so only when no installed package provides `modelfs.testing`: fail the
    import with the extra to install instead of a bare "No module named". (A missing module
    inside an installed harness, `modelfs.testing.typo`, fails as usual.)"""

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None,
        target: ModuleType | None = None,
    ) -> ModuleSpec | None:
        if fullname == "modelfs.testing":
            raise ModuleNotFoundError(
                f"No module named {fullname!r}: modelfs's test harness is not part of the "
                f"operator; install it with: pip install '{TESTING_EXTRA}'",
                name=fullname,
            )
        return None


if not any(type(finder).__name__ == "_TestingHint" for finder in sys.meta_path):
    sys.meta_path.append(_TestingHint())
