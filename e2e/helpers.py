"""Helpers of the end-to-end tests."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
DATASET_GROUP, DATASET_VERSION, DATASET_PLURAL = "dataset.baizeai.io", "v1alpha1", "datasets"


async def eventually(
    check: Callable[[], Awaitable[bool]], within: float = 60.0, what: str = "condition"
) -> None:
    """Poll `check` every 0.2 s until it returns True; fail after `within` seconds."""
    deadline = time.monotonic() + within
    while not await check():
        if time.monotonic() > deadline:
            pytest.fail(f"{what} not reached within {within}s")
        await asyncio.sleep(0.2)


def error_message(error: Any) -> str:
    """The `message` of a Kubernetes Status in an ApiException body (or the raw body)."""
    try:
        return str(json.loads(error.body)["message"])
    except (TypeError, ValueError, KeyError):
        return str(error.body)


def dataset(name: str, uri: str = "huggingface://org/model", **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": f"{DATASET_GROUP}/{DATASET_VERSION}",
        "kind": "Dataset",
        "metadata": {"name": name},
        "spec": {"source": {"type": "HUGGING_FACE", "uri": uri}, **spec},
    }
