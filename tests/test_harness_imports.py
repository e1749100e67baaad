"""The harness outside pytest: `modelfs sandbox`, the pod simulator, the Dataset engine, the fake
and the control plane run without pytest (its plugin is the one module that imports it)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import modelfs.testing

HARNESS = Path(modelfs.testing.__file__).parent
PLUGIN = HARNESS / "pytest_plugin.py"


def imported_modules(path: Path) -> set[str]:
    """Every module `path` imports, at the top or inside a function."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
    return found


def test_only_the_plugin_imports_pytest() -> None:
    sources = sorted(p for p in HARNESS.rglob("*.py") if p != PLUGIN)
    assert HARNESS / "sandbox.py" in sources and HARNESS / "podsim.py" in sources
    offenders = {
        str(path.relative_to(HARNESS)): sorted(
            name
            for name in imported_modules(path)
            if name.split(".")[0] == "pytest" or name == "modelfs.testing.pytest_plugin"
        )
        for path in sources
    }
    assert {path: names for path, names in offenders.items() if names} == {}


def test_sandbox_and_pod_simulator_load_without_pytest(tmp_path: Path) -> None:
    """In a fresh interpreter: import them, and resolve the CRD files the sandbox installs
    (which once imported the plugin for the Dataset CRD's path)."""
    script = f"""
import sys
import modelfs.testing.sandbox as sandbox
import modelfs.testing.podsim
import modelfs.testing.dataset_engine
import modelfs.testing.fake_dataset
import modelfs.testing.controlplane
import modelfs.testing.operator
files = sandbox.crd_files(__import__("pathlib").Path({str(tmp_path)!r}))
assert files[-1].name == "dataset.baizeai.io_datasets.yaml", files
print("pytest" in sys.modules, "modelfs.testing.pytest_plugin" in sys.modules)
"""
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["False", "False"]
