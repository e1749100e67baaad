"""Helpers of the end-to-end tests."""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Protocol

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


README = Path(__file__).resolve().parents[1] / "README.md"


def readme_block(marker: str, name: str) -> str:
    """The ```bash block after `<!-- {marker}: {name} -->` in the README: the scripts the
    tests run verbatim."""
    found = re.search(rf"<!-- {marker}: {name} -->\n```bash\n(.*?)```", README.read_text(), re.S)
    assert found, f"README has no {marker} {name!r}"
    return found.group(1)


def custom_object(found: object) -> dict[str, Any]:
    """What CustomObjectsApi returned (typed `object`): the object or list as JSON."""
    assert isinstance(found, dict), f"not a JSON object: {found!r}"
    return found


class Model(Protocol):
    """A kubernetes.aio model (V1Pod, V1Job, ...)."""

    def to_dict(self, serialize: bool = ...) -> dict[str, Any]: ...


def wire(model: Model) -> dict[str, Any]:
    """A kubernetes.aio model as the API server's JSON (camelCase, unset fields left out):
    checks of nested fields, each of which the model types as optional, read as JSON."""
    pruned = _without_none(model.to_dict(serialize=True))
    assert isinstance(pruned, dict)
    return pruned


def _without_none(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_none(v) for v in value]
    return value


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
