"""A kind is added by writing its module and registering one descriptor: the operator's kopf
registration, queues, runner, `Indexes` and the in-memory cluster serve it with no other edit."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import kopf

from modelfs import operator
from modelfs.api.v1 import GROUP, VERSION
from modelfs.controllers import triggers
from modelfs.controllers.descriptor import Descriptor
from modelfs.controllers.kinds import RECONCILED, WATCHED
from modelfs.controllers.result import Result
from modelfs.controllers.runtime import Context, Key, body_key, by_name
from modelfs.controllers.status import write_status
from tests.memcluster import MemCluster, obj

NS = "team-a"


class Widget:
    """A stand-in API type: what `Runtime.parse` needs of one."""

    kind_name = "Widget"

    @classmethod
    def model_validate(cls, body: Mapping[str, Any]) -> Widget:
        return cls()


async def reconcile(ctx: Context, key: Key, body: dict[str, Any]) -> Result:
    sizes = (body.get("spec") or {}).get("size", 0)
    await write_status(ctx, "widgets", key, body.get("status") or {}, {"doubled": sizes * 2})
    return Result.done()


def widget_changed(ix: Any, body: Mapping[str, Any]) -> triggers.Affected:
    return triggers.Affected().add("widgets", body_key(body))


WIDGETS = Descriptor(
    kind="Widget",
    plural="widgets",
    group=GROUP,
    version=VERSION,
    parsed=Widget,
    index=by_name,
    views={"widgets": None},
    triggers=widget_changed,
    reconcile=reconcile,
    workers=1,
)


def test_every_kind_has_one_descriptor_and_the_registry_reads_them() -> None:
    assert [k.plural for k in RECONCILED] == [
        "modelsources",
        "models",
        "modelsyncs",
        "modelreferences",
    ]
    registry = operator.register(kopf.OperatorRegistry(), (*WATCHED, WIDGETS))
    indexes = {h.id for h in registry._indexing.get_all_handlers()}
    events = {h.id for h in registry._watching.get_all_handlers()}
    assert indexes == {kind.index_id for kind in (*WATCHED, WIDGETS)}
    assert events == {f"{kind.plural}_event" for kind in (*WATCHED, WIDGETS)}


async def test_a_new_kind_is_reconciled_with_no_edit_outside_its_descriptor() -> None:
    cluster = MemCluster(extra=(WIDGETS,))
    cluster.namespace(NS)
    cluster.put(obj("Widget", NS, "w", {"size": 21}))
    async with cluster.running() as running:
        await cluster.settle()
        assert cluster.objects["widgets"][(NS, "w")]["status"] == {"doubled": 42}
        assert cluster.indexes.object("widgets", (NS, "w")) is not None
        body = cluster.objects["widgets"][(NS, "w")]
        cluster.put({**body, "spec": {"size": 5}})
        await cluster.settle()
        assert cluster.objects["widgets"][(NS, "w")]["status"] == {"doubled": 10}
        assert set(triggers.everything(cluster.indexes, running.kinds).keys) >= {"widgets"}
    assert cluster.reconciles[("widgets", (NS, "w"))] == 2
    cluster.delete("Widget", (NS, "w"))
