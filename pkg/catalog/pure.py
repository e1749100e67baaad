"""The lookups' pure parts: figures, fingerprints, messages, headers, pkt-lines. No I/O."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

from modelfs.pkg.catalog.types import CatalogEntry, Refusal, RefusalReason

SHOWN_FILES = 5
"""A NoFilesMatched message names at most this many of the files the repository has."""


@dataclass(frozen=True)
class RemoteFile:
    """One file of a listing: its path in the source, its size, and what identifies its content
    (LFS sha256, blob id, ETag), or "" when the source gives none."""

    path: str
    size: int | None
    digest: str = ""


def fingerprint(revision: str | None, files: Iterable[RemoteFile]) -> str:
    """Changes when the revision or any file (path, size, digest) a round would fetch changes;
    the order of the listing does not matter."""
    digest = hashlib.sha256()
    digest.update(f"rev\0{revision or ''}\n".encode())
    for f in sorted(files, key=lambda f: f.path):
        digest.update(f"{f.path}\0{'' if f.size is None else f.size}\0{f.digest}\n".encode())
    return "sha256:" + digest.hexdigest()


def total_bytes(files: Sequence[RemoteFile]) -> int | None:
    """The sum of the sizes, or None when any size is unknown (a partial sum would mislead an
    InsufficientStorage check)."""
    if any(f.size is None for f in files):
        return None
    return sum(f.size or 0 for f in files)


def entry_of(
    revision: str | None,
    files: Sequence[RemoteFile],
    *,
    parameters: int | None = None,
    architecture: str | None = None,
    license: str | None = None,
    gated: bool | None = None,
) -> CatalogEntry:
    return CatalogEntry(
        revision=revision,
        files=len(files),
        bytes=total_bytes(files),
        fingerprint=fingerprint(revision, files),
        parameters=parameters,
        architecture=architecture,
        license=license,
        gated=gated,
    )


def no_files_matched(
    include: str | None, exclude: str | None, available: Sequence[str], where: str
) -> Refusal:
    """The refusal when include/exclude select nothing: the patterns, and a few files there are."""
    patterns = []
    if include:
        patterns.append(f"include {include!r}")
    if exclude:
        patterns.append(f"exclude {exclude!r}")
    said = " and ".join(patterns) or "no include/exclude"
    if not available:
        return Refusal(RefusalReason.NO_FILES_MATCHED, f"{where} has no files ({said})")
    shown = sorted(available)[:SHOWN_FILES]
    more = len(available) - len(shown)
    files = ", ".join(shown) + (f" and {more} more" if more else "")
    return Refusal(
        RefusalReason.NO_FILES_MATCHED,
        f"{said} match no file of {where}, which has {len(available)} file"
        f"{'' if len(available) == 1 else 's'}: {files}",
    )


def retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP-date), or None."""
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return seconds if math.isfinite(seconds) and seconds >= 0 else None
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def human_size(size: int) -> str:
    """1536 -> '1.5 KiB': the binary units Kubernetes quantities use (Gi, Ti)."""
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if value < 1024 or unit == "PiB":
            return f"{int(value)} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


class PktLineError(ValueError):
    """The bytes are not a pkt-line stream (the server is not a smart-HTTP git server)."""


def pkt_lines(data: bytes) -> list[bytes | None]:
    """Split a git pkt-line stream: each payload, None for a flush-pkt (0000). Delim (0001) and
    response-end (0002) packets of protocol v2 are read as flushes too."""
    out: list[bytes | None] = []
    i = 0
    while i < len(data):
        head = data[i : i + 4]
        if len(head) < 4:
            raise PktLineError(f"truncated length at byte {i}")
        try:
            size = int(head, 16)
        except ValueError:
            raise PktLineError(f"bad length {head!r} at byte {i}") from None
        if size < 4:
            if size == 3:
                raise PktLineError(f"bad length {head!r} at byte {i}")
            out.append(None)
            i += 4
            continue
        if i + size > len(data):
            raise PktLineError(f"packet at byte {i} runs past the end")
        out.append(data[i + 4 : i + size])
        i += size
    return out


@dataclass(frozen=True)
class RefAdvertisement:
    refs: dict[str, str]
    """ref name -> object id, peeled tags (^{}) as the commit they point at."""
    capabilities: frozenset[str]
    head: str | None
    """The branch HEAD points at (symref capability), when the server says."""


def parse_ref_advertisement(data: bytes) -> RefAdvertisement:
    """The smart-HTTP answer to `info/refs?service=git-upload-pack` (protocol v0/v1)."""
    packets = pkt_lines(data)
    if not packets or packets[0] is None or not packets[0].startswith(b"# service="):
        raise PktLineError("no '# service=' announcement: not a smart-HTTP git server")
    refs: dict[str, str] = {}
    caps: frozenset[str] = frozenset()
    first = True
    for packet in packets[1:]:
        if packet is None:
            continue
        line = packet.rstrip(b"\n")
        if first:
            line, _, raw_caps = line.partition(b"\0")
            caps = frozenset(raw_caps.decode(errors="replace").split())
            first = False
        oid, _, name = line.decode(errors="replace").partition(" ")
        if name == "capabilities^{}":
            continue
        if len(oid) not in (40, 64) or not name:
            raise PktLineError(f"bad ref line {line[:80]!r}")
        if name.endswith("^{}"):
            refs[name.removesuffix("^{}")] = oid
        else:
            refs.setdefault(name, oid)
    head = None
    for cap in caps:
        if cap.startswith("symref=HEAD:"):
            head = cap.removeprefix("symref=HEAD:")
    return RefAdvertisement(refs, caps, head)


def pkt_line(payload: bytes) -> bytes:
    """One pkt-line (for tests and the servers that speak the protocol)."""
    return f"{len(payload) + 4:04x}".encode() + payload
