"""modelfs.memory: shared strings in what the indexes keep, and the smaller TLS read buffer."""

from __future__ import annotations

import asyncio
import asyncio.sslproto
import json
import ssl
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modelfs import operator as operator_module
from modelfs.controllers import triggers, watched
from modelfs.controllers.runtime import snapshot
from modelfs.memory import SHARED_STRING_LENGTH, SSL_READ_BUFFER, shared, shrink_ssl_buffers
from modelfs.testing.controlplane import PKI
from tests.memcluster import obj
from tests.test_reconcile_core import NS, shared_model_cluster

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=60),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=30), inner, max_size=4)
    ),
    max_leaves=30,
)


def pairs(a: Any, b: Any) -> list[tuple[Any, Any]]:
    """Every (key or value in a, the same in b) of two equal JSON values, depth first."""
    found: list[tuple[Any, Any]] = []
    if isinstance(a, dict):
        for (ka, va), (kb, vb) in zip(a.items(), b.items(), strict=True):
            found += [(ka, kb), *pairs(va, vb)]
    elif isinstance(a, list):
        for va, vb in zip(a, b, strict=True):
            found += pairs(va, vb)
    else:
        found.append((a, b))
    return found


@settings(max_examples=200)
@given(json_values)
def test_shared_keeps_the_value_and_shares_its_keys_and_short_strings(value: Any) -> None:
    text = json.dumps(value)
    first, second = shared(json.loads(text)), shared(json.loads(text))
    assert first == json.loads(text)
    for a, b in pairs(first, second):
        if isinstance(a, str) and len(a) <= SHARED_STRING_LENGTH:
            assert a is b, a


def test_dict_keys_are_shared_whatever_their_length() -> None:
    key = "k" * (SHARED_STRING_LENGTH + 10)
    text = json.dumps({key: 1})
    (a,), (b,) = shared(json.loads(text)), shared(json.loads(text))
    assert a is b


def test_two_snapshots_of_separately_decoded_events_share_keys_and_reasons() -> None:
    body = {
        "metadata": {
            "name": "sync-0",
            "annotations": {"model.samzong.dev/served-sync-round": "1"},
            "managedFields": [{"manager": "modelfs", "operation": "Apply", "fieldsV1": {}}],
        },
        "status": {
            "conditions": [
                {"type": "Ready", "status": "True", "reason": "DatasetReady", "message": "m" * 80}
            ]
        },
    }
    text = json.dumps(body)
    a, b = snapshot(json.loads(text)), snapshot(json.loads(text))
    ready_a, ready_b = a["status"]["conditions"][0], b["status"]["conditions"][0]
    for key_a, key_b in zip(ready_a, ready_b, strict=True):
        assert key_a is key_b
    assert ready_a["reason"] is ready_b["reason"]
    (annotation_a,), (annotation_b,) = a["metadata"]["annotations"], b["metadata"]["annotations"]
    assert annotation_a is annotation_b
    manager_a, manager_b = a["metadata"]["managedFields"][0], b["metadata"]["managedFields"][0]
    assert manager_a == {"manager": "modelfs"}
    assert next(iter(manager_a)) is next(iter(manager_b))


async def test_a_tls_connection_reads_a_large_answer_whole_with_the_smaller_buffer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(asyncio.sslproto.SSLProtocol, "max_size", 256 * 1024)
    shrink_ssl_buffers()
    assert asyncio.sslproto.SSLProtocol.max_size == SSL_READ_BUFFER

    pki = PKI.create(tmp_path / "pki")
    server_side = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_side.load_cert_chain(pki.serving_cert, pki.serving_key)
    client_side = ssl.create_default_context(cafile=str(pki.ca_cert))
    payload = bytes(range(256)) * (4 * 4096)  # 4 MiB, 64 reads of the buffer at least

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readline()
        writer.write(payload)
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0, ssl=server_side)
    port = server.sockets[0].getsockname()[1]
    async with server:
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", port, ssl=client_side, server_hostname="localhost"
        )
        transport: Any = writer.transport
        buffer = len(transport._ssl_protocol._ssl_buffer)
        writer.write(b"get\n")
        received = await reader.read(-1)
        writer.close()
    assert received == payload
    assert buffer == SSL_READ_BUFFER


def test_a_datasets_reads_are_kept_for_its_newest_version_only_and_go_with_it() -> None:
    def dataset(version: str, phase: str) -> dict[str, Any]:
        return {
            "metadata": {
                "name": "d",
                "namespace": "ns",
                "uid": "uid-d",
                "resourceVersion": version,
            },
            "status": {"phase": phase},
        }

    first = triggers.dataset_reads(dataset("1", "PENDING"))
    assert triggers.dataset_reads(dataset("1", "PENDING")) is first  # asked again: kept
    second = triggers.dataset_reads(dataset("2", "READY"))
    assert second[1] == {"phase": "READY"}
    assert all(reads is not first for _, reads in triggers._reads.values())  # the older went
    assert triggers._reads["uid-d"] == ("2", second)
    triggers.forget_reads("uid-d")
    assert "uid-d" not in triggers._reads


async def test_the_reads_the_operator_keeps_refer_to_the_indexed_copy() -> None:
    """A watch event's body is its own decoded copy; the index holds one with shared strings.
    What the operator keeps to compare the next event with must be the index's."""
    cluster = shared_model_cluster(versions=1, references=0)
    operator = operator_module.Operator(cluster.runtime)
    stored = cluster.put(
        {**obj("Dataset", NS, "mdl-v0", {"source": {"type": "HTTP"}}), "status": {"phase": "READY"}}
    )
    indexed = cluster.indexes.object("datasets", (NS, "mdl-v0"))
    assert indexed is not None and indexed is not stored
    operator.on_event(watched.DATASETS, json.loads(json.dumps(stored)), cluster.indexes)
    kept = operator.reads[("datasets", (NS, "mdl-v0"))]
    assert kept[1] is indexed["status"]
    await operator.stop()
