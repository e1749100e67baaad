"""ModelSource controller: checks config against the type and the Secret's keys, counts Models."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import kopf

from api.v1 import ModelSource, SourceType
from controllers import metrics
from controllers.runtime import Context, Key, body_key, condition
from controllers.status import forget, now_string, with_conditions, write_status
from pkg.dataset import (
    ResolutionError,
    describe_secret_keys,
    missing_secret_keys,
    parse,
    source_config_errors,
)

PLURAL = "modelsources"
SECRET_MISSING = "SecretMissing"
SECRET_KEY_MISSING = "SecretKeyMissing"

logger = logging.getLogger("modelfs.modelsource")


@dataclass(frozen=True)
class Verdict:
    """Whether Models can use the source, and why not."""

    ready: bool
    reason: str
    message: str


# ----------------------------------------------------------------------------- pure builders


def config_verdict(source: ModelSource) -> Verdict | None:
    """The verdict on config alone, or None when the config is fine."""
    errors = source_config_errors(source)
    if not errors:
        return None
    message = "; ".join(f"{e.field}: {e.message}" for e in errors)
    return Verdict(False, str(errors[0].reason), message)


def secret_verdict(source: ModelSource, keys: frozenset[str] | None) -> Verdict | None:
    """The verdict on the Secret, from its key names only; None when fine or not needed."""
    name = source.spec.secret_ref
    if not name:
        return None
    source_type = SourceType(source.spec.type)
    if keys is None:
        return Verdict(
            False,
            SECRET_MISSING,
            f"Secret {name!r} does not exist in namespace {source.metadata.namespace!r}; "
            f"{source_type} reads the keys {describe_secret_keys(source_type)}",
        )
    missing = missing_secret_keys(source_type, set(keys))
    if missing:
        return Verdict(
            False,
            SECRET_KEY_MISSING,
            f"Secret {name!r} lacks the key(s) {', '.join(missing)}; {source_type} reads "
            f"{describe_secret_keys(source_type)}",
        )
    return None


def verdict(source: ModelSource, keys: frozenset[str] | None) -> Verdict:
    found = config_verdict(source) or secret_verdict(source, keys)
    return found or Verdict(True, "Ready", f"{source.spec.type} source is ready")


def desired_status(
    source: ModelSource, current: dict[str, Any], result: Verdict, models: int, now: str
) -> dict[str, Any]:
    generation = source.metadata.generation
    return {
        "conditions": with_conditions(
            current.get("conditions") or [],
            [("Ready", result.ready, result.reason, result.message)],
            generation,
            now,
        ),
        "observedGeneration": generation,
        "models": models,
    }


# ----------------------------------------------------------------------------- reconcile


async def secret_keys_of(
    ctx: Context, source: ModelSource, *, refresh: bool
) -> frozenset[str] | None:
    """The key names of the source's Secret: read from the API (and cached) when `refresh` or
    never read before, else from the cache. None: no secretRef, or no such Secret."""
    name = source.spec.secret_ref
    if not name:
        return None
    key = (source.metadata.namespace or "", name)
    cache = ctx.runtime.secret_keys
    if refresh or key not in cache:
        cache[key] = await ctx.runtime.objects.secret_keys(*key)
    return cache[key]


async def source_verdict(ctx: Context, key: Key) -> Verdict | None:
    """The verdict on a ModelSource from memory (reading its Secret once if never read); None
    when the source does not exist."""
    body = ctx.indexes.source(key)
    if body is None:
        return None
    source = parse(ModelSource, body)
    return verdict(source, await secret_keys_of(ctx, source, refresh=False))


async def reconcile_source(
    ctx: Context, key: Key, *, recheck_secret: bool = True
) -> Verdict | None:
    """Check one ModelSource and write its status when it changed. Returns the verdict."""
    async with ctx.runtime.lock(PLURAL, key):
        body = ctx.indexes.source(key)
        if (
            body is None
            or body.get("metadata", {}).get("deletionTimestamp")
            or ctx.indexes.terminating(key[0])
        ):
            return None
        metrics.RECONCILES.labels(kind="ModelSource").inc()
        try:
            source = parse(ModelSource, body)
        except ResolutionError as error:
            logger.warning("Refused ModelSource", extra={"object": key, "error": str(error)})
            return None
        result = verdict(source, await secret_keys_of(ctx, source, refresh=recheck_secret))
        models = len(ctx.indexes.model_names_of_source(key))
        current = body.get("status") or {}
        desired = desired_status(source, current, result, models, now_string())
        old_ready = condition(current, "Ready")
        written = await write_status(ctx, PLURAL, key, source.metadata.uid or "", current, desired)
        if written and (old_ready.get("reason"), old_ready.get("message")) != (
            result.reason,
            result.message,
        ):
            ctx.runtime.post_event(
                body, "Normal" if result.ready else "Warning", result.reason, result.message
            )
            logger.info(
                "Updated ModelSource status",
                extra={"object": key, "ready": result.ready, "reason": result.reason},
            )
        return result


# ----------------------------------------------------------------------------- handlers


async def modelsource_changed(body: kopf.Body, memo: kopf.Memo, **kwargs: Any) -> None:
    """create / update / resume: check the source, then every Model and ModelSync that uses it."""
    from controllers.model import reconcile_models_of_source

    ctx = Context.from_kwargs(memo, kwargs)
    key = body_key(body)
    await reconcile_source(ctx, key)
    await reconcile_models_of_source(ctx, key)


async def recheck_source(ctx: Context, key: Key) -> None:
    """Periodic: re-read the Secret's key names (Secrets are not watched cluster-wide) and
    re-check the dependants when they changed."""
    from controllers.model import reconcile_models_of_source

    body = ctx.indexes.source(key) or {}
    secret = body.get("spec", {}).get("secretRef")
    before = ctx.runtime.secret_keys.get((key[0], secret)) if secret else None
    await reconcile_source(ctx, key)
    after = ctx.runtime.secret_keys.get((key[0], secret)) if secret else None
    if before != after:
        await reconcile_models_of_source(ctx, key)


async def modelsource_deleted(body: kopf.Body, memo: kopf.Memo, **kwargs: Any) -> None:
    """A deleted source leaves its Models and ModelSyncs with a clear condition."""
    from controllers.model import reconcile_models_of_source

    ctx = Context.from_kwargs(memo, kwargs)
    forget(ctx, PLURAL, body.get("metadata", {}).get("uid", ""))
    await reconcile_models_of_source(ctx, body_key(body))
