"""Where `make` puts the tools the tests run (helm, checkov, actionlint): the tools cache of
hack/lib.sh's cache_dir, `$MODELFS_CACHE_DIR/tools` (else `$XDG_CACHE_HOME/modelfs/tools`, else
`~/.cache/modelfs/tools`), each in a folder named after its pinned version. A missing tool fails
the test with the make target that installs it: CI runs `make test`, which builds them all."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def tools_dir() -> Path:
    if os.environ.get("MODELFS_CACHE_DIR"):
        return Path(os.environ["MODELFS_CACHE_DIR"]).expanduser() / "tools"
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg).expanduser() / "modelfs" / "tools"


def versions_env() -> dict[str, str]:
    text = (ROOT / "hack" / "versions.env").read_text()
    return dict(re.findall(r"^([A-Z_]+)=(\S+)$", text, re.M))


def makefile_variable(name: str) -> str:
    found = re.search(rf"^{name} := (\S+)$", (ROOT / "Makefile").read_text(), re.M)
    assert found, f"{name} is not set in the Makefile"
    return found.group(1)


def _require(path: Path, target: str) -> str:
    if not path.exists():
        pytest.fail(f"{path} not found: `make {target}` installs it", pytrace=False)
    return str(path)


def helm() -> str:
    return _require(tools_dir() / f"helm-{versions_env()['HELM_VERSION']}" / "helm", "helm")


def checkov() -> str:
    version = makefile_variable("CHECKOV_VERSION")
    folder = tools_dir() / f"checkov-{version}"
    _require(folder / ".installed", "checkov")
    return str(folder / "bin" / "checkov")


def actionlint() -> str:
    version = makefile_variable("ACTIONLINT_VERSION")
    return _require(tools_dir() / f"actionlint-{version}" / "actionlint", "actionlint")
