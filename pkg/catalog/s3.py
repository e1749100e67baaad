"""S3: ListObjectsV2 on the prefix the loader copies, with botocore (the official client).

The loader runs `rclone sync s3:bucket/dir`: everything under `dir/`. botocore is imported on
the first S3 lookup only, so an operator with no S3 source never loads it
(docs/decisions.md "Catalog lookups" has the memory it costs).
"""

from __future__ import annotations

import asyncio
from typing import Any

from modelfs.pkg.catalog.loop import in_thread
from modelfs.pkg.catalog.net import NetSettings, clip, scrub, secrets_of
from modelfs.pkg.catalog.pure import RemoteFile, entry_of, retry_after
from modelfs.pkg.catalog.types import (
    CatalogRequest,
    Credentials,
    LookupResult,
    Refusal,
    RefusalReason,
    Unavailable,
    UnavailableReason,
)

DEFAULT_REGION = "us-east-1"
"""The loader's rclone falls back to it when an AWS source names none."""
MAX_KEYS = 1000
THROTTLED = ("SlowDown", "Throttling", "ThrottlingException", "RequestLimitExceeded")
MISSING = ("NoSuchBucket", "NoSuchKey")


def bucket_prefix(uri: str) -> tuple[str, str]:
    """`s3://bucket/dir` -> ("bucket", "dir/"); the bucket's root gives ""."""
    bucket, _, directory = uri.removeprefix("s3://").partition("/")
    directory = directory.strip("/")
    return bucket, f"{directory}/" if directory else ""


class S3Lookup:
    def __init__(self, settings: NetSettings | None = None) -> None:
        self.settings = settings or NetSettings()

    async def __call__(self, request: CatalogRequest, credentials: Credentials) -> LookupResult:
        try:
            return await asyncio.wait_for(
                in_thread(self.lookup, request, credentials), self.settings.timeout
            )
        except TimeoutError:
            return Unavailable(
                UnavailableReason.TIMEOUT,
                f"S3 ({self._endpoint(request)}) did not answer within {self.settings.timeout:g}s",
            )

    def _endpoint(self, request: CatalogRequest) -> str:
        region = request.option("region") or DEFAULT_REGION
        return request.option("endpoint") or f"https://s3.{region}.amazonaws.com"

    def client(self, request: CatalogRequest, credentials: Credentials) -> Any:
        import botocore.session
        from botocore import UNSIGNED
        from botocore.config import Config

        access, secret = credentials.get("access-key"), credentials.get("secret-key")
        provider = request.option("provider") or "AWS"
        config = Config(
            connect_timeout=self.settings.timeout,
            read_timeout=self.settings.timeout,
            retries={"max_attempts": 1, "mode": "standard"},
            # MinIO and most S3 servers other than AWS serve buckets on the path.
            s3={"addressing_style": "path" if provider != "AWS" else "auto"},
            signature_version=None if access and secret else UNSIGNED,
            user_agent_extra="modelfs",
        )
        session = botocore.session.get_session()
        return session.create_client(
            "s3",
            region_name=request.option("region") or DEFAULT_REGION,
            endpoint_url=request.option("endpoint") or None,
            aws_access_key_id=access if access and secret else None,
            aws_secret_access_key=secret if access and secret else None,
            verify=self.settings.ca_bundle or True,
            config=config,
        )

    def lookup(self, request: CatalogRequest, credentials: Credentials) -> LookupResult:
        """The blocking lookup (run in a thread by `__call__`)."""
        from botocore.exceptions import (
            BotoCoreError,
            ClientError,
            ConnectTimeoutError,
            EndpointConnectionError,
            ReadTimeoutError,
        )

        bucket, prefix = bucket_prefix(request.uri)
        endpoint = self._endpoint(request)
        where = f"s3://{bucket}/{prefix} at {endpoint}"
        secrets = secrets_of(credentials)
        listing: list[dict[str, Any]] = []
        try:
            client = self.client(request, credentials)
            token: str | None = None
            while True:
                args: dict[str, Any] = {"Bucket": bucket, "Prefix": prefix, "MaxKeys": MAX_KEYS}
                if token:
                    args["ContinuationToken"] = token
                page = client.list_objects_v2(**args)
                listing.extend(page.get("Contents") or [])
                token = page.get("NextContinuationToken")
                if not page.get("IsTruncated") or not token:
                    break
        except ClientError as e:
            error = e.response.get("Error", {})
            code = str(error.get("Code", ""))
            status = int(e.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
            if code in MISSING or (status == 404 and not code):
                return Refusal(
                    RefusalReason.SOURCE_OBJECT_NOT_FOUND,
                    f"bucket {bucket} does not exist at {endpoint}",
                )
            if code in THROTTLED or status in (429, 503):
                headers = e.response.get("ResponseMetadata", {}).get("HTTPHeaders", {})
                wait = retry_after(headers.get("retry-after"))
                return Unavailable(
                    UnavailableReason.RATE_LIMITED,
                    f"S3 throttled the listing of {where} ({code or status})",
                    retry_after=wait,
                )
            message = clip(scrub(str(error.get("Message") or ""), secrets))
            return Unavailable(
                UnavailableReason.SERVER_ERROR,
                f"S3 answered {code or status} for {where}" + (f": {message}" if message else ""),
            )
        except (ConnectTimeoutError, ReadTimeoutError):
            return Unavailable(
                UnavailableReason.TIMEOUT,
                f"S3 ({endpoint}) did not answer within {self.settings.timeout:g}s",
            )
        except (EndpointConnectionError, OSError) as e:
            return Unavailable(
                UnavailableReason.UNREACHABLE,
                f"S3 ({endpoint}) cannot be reached: {clip(scrub(str(e), secrets))}",
            )
        except BotoCoreError as e:
            return Unavailable(
                UnavailableReason.SERVER_ERROR,
                f"S3 ({endpoint}): {clip(scrub(str(e), secrets))}",
            )
        return summarize(listing, where)


def summarize(listing: list[dict[str, Any]], where: str) -> LookupResult:
    """The entry for a ListObjectsV2 listing (pure). Keys ending in `/` are folder markers,
    which rclone does not copy as files."""
    files = [
        RemoteFile(str(o["Key"]), int(o.get("Size") or 0), str(o.get("ETag") or "").strip('"'))
        for o in listing
        if not str(o["Key"]).endswith("/")
    ]
    if not files:
        return Refusal(
            RefusalReason.SOURCE_OBJECT_NOT_FOUND, f"{where} holds no object: nothing to download"
        )
    return entry_of(None, files)
