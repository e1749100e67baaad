"""modelfs's selector verdicts agree with the API server's for the same selectors."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from typing import Any

import pytest
from kubernetes.aio.client import ApiClient, CoreV1Api, V1Namespace, V1ObjectMeta

from e2e.helpers import wire
from modelfs.pkg.labels import selector_matches

KEYS = ["team", "tier", "example.com/owner"]
VALUES = ["ml", "web", "gpu"]


def to_string(selector: dict[str, Any]) -> str:
    """The label selector query syntax of the API server."""
    parts = [f"{k}={v}" for k, v in selector.get("matchLabels", {}).items()]
    for r in selector.get("matchExpressions", []):
        key, op = r["key"], r["operator"]
        if op == "In":
            parts.append(f"{key} in ({','.join(r['values'])})")
        elif op == "NotIn":
            parts.append(f"{key} notin ({','.join(r['values'])})")
        elif op == "Exists":
            parts.append(key)
        else:
            parts.append(f"!{key}")
    return ",".join(parts)


def random_selector(rng: random.Random) -> dict[str, Any]:
    selector: dict[str, Any] = {}
    if rng.random() < 0.5:
        selector["matchLabels"] = {rng.choice(KEYS): rng.choice(VALUES)}
    expressions = []
    for _ in range(rng.randint(0, 2)):
        op = rng.choice(["In", "NotIn", "Exists", "DoesNotExist"])
        requirement: dict[str, Any] = {"key": rng.choice(KEYS), "operator": op}
        if op in ("In", "NotIn"):
            requirement["values"] = rng.sample(VALUES, rng.randint(1, 2))
        expressions.append(requirement)
    if expressions:
        selector["matchExpressions"] = expressions
    return selector


@pytest.fixture
async def labelled_namespaces(
    k8s_api: ApiClient, k8s_namespace: str
) -> AsyncIterator[dict[str, dict[str, str]]]:
    rng = random.Random(20261127)
    core = CoreV1Api(k8s_api)
    made: dict[str, dict[str, str]] = {}
    for index in range(8):
        labels = {k: rng.choice(VALUES) for k in KEYS if rng.random() < 0.6}
        labels["modelfs-selector-test"] = k8s_namespace
        name = f"{k8s_namespace[:50]}-n{index}"
        await core.create_namespace(V1Namespace(metadata=V1ObjectMeta(name=name, labels=labels)))
        made[name] = labels
    yield made
    for name in made:
        await core.delete_namespace(name)


async def test_verdicts_match_the_api_server(
    k8s_api: ApiClient, k8s_namespace: str, labelled_namespaces: dict[str, dict[str, str]]
) -> None:
    core, rng = CoreV1Api(k8s_api), random.Random(7)
    compared = 0
    for _ in range(60):
        selector = random_selector(rng)
        query = ",".join(
            filter(None, [f"modelfs-selector-test={k8s_namespace}", to_string(selector)])
        )
        listed = await core.list_namespace(label_selector=query)
        server = {wire(ns)["metadata"]["name"] for ns in listed.items}
        ours = {
            name
            for name, labels in labelled_namespaces.items()
            if selector_matches(selector, labels)
        }
        assert ours == server, (selector, query)
        compared += 1
    assert compared == 60
