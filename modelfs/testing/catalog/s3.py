"""S3: moto's server mode (a real S3 API on a free loopback port), and a helper to fill a
bucket through botocore, the client the lookups use."""

from __future__ import annotations

import socket
from collections.abc import Mapping
from typing import Any

ACCESS_KEY = "modelfs-test-access"
SECRET_KEY = "modelfs-test-secret"
REGION = "us-east-1"


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


class S3Server:
    """moto's ThreadedMotoServer; `url` is the endpoint for the MINIO provider or endpoint."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.host = host
        self.port = 0
        self._server: Any = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> S3Server:
        import logging

        from moto.server import ThreadedMotoServer

        # werkzeug logs every request on stderr.
        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        self.port = free_port(self.host)
        self._server = ThreadedMotoServer(ip_address=self.host, port=self.port, verbose=False)
        self._server.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None

    def __enter__(self) -> S3Server:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def client(self) -> Any:
        import botocore.session

        return botocore.session.get_session().create_client(
            "s3",
            region_name=REGION,
            endpoint_url=self.url,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
        )

    def put(self, bucket: str, objects: Mapping[str, bytes]) -> None:
        """Create `bucket` if needed and put `objects` (key -> content) in it."""
        client = self.client()
        existing = {b["Name"] for b in client.list_buckets().get("Buckets", [])}
        if bucket not in existing:
            client.create_bucket(Bucket=bucket)
        for key, content in objects.items():
            client.put_object(Bucket=bucket, Key=key, Body=content)
