"""What the operator's wheel and image ship: the operator, without the test harness.

The image's virtualenv is built here exactly as the Dockerfile's build stage builds it (the
files it COPYs, the command it RUNs: hack/build-venv.sh), then inspected: `modelfs run` works,
the harness is absent and `import modelfs.testing` says which extra installs it, no test
dependency came along. The harness is a distribution of its own (modelfs/testing/pyproject.toml,
`modelfs[testing]`); installed beside the operator's wheel it provides modelfs.testing, whose
pytest plugin loads only where asked for.
"""

from __future__ import annotations

import email.parser
import shutil
import subprocess
import sys
import tomllib
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from modelfs import TESTING_EXTRA, __version__

ROOT = Path(__file__).resolve().parents[1]
HARNESS = ROOT / "modelfs" / "testing"
#: The wheel's top-level import names: api/, controllers/ and pkg/ install as modelfs.api,
#: modelfs.controllers and modelfs.pkg.
TOP_LEVEL = {"modelfs"}


def build_stage_steps() -> tuple[list[str], str]:
    """The Dockerfile's build stage: its COPY sources and its one RUN command."""
    text = (ROOT / "Dockerfile").read_text()
    stage = text.split(" AS build\n", 1)[1].split("\nFROM ", 1)[0]
    sources = [
        src for line in stage.splitlines() if line.startswith("COPY ") for src in line.split()[1:-1]
    ]
    (run,) = [line.removeprefix("RUN ") for line in stage.splitlines() if line.startswith("RUN ")]
    return sources, run


def run(*argv: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(a) for a in argv], capture_output=True, text=True, timeout=540, check=False, cwd=cwd
    )


@pytest.fixture(scope="module")
def image_venv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """/opt/modelfs as the Dockerfile builds it, without Docker: copy what it COPYs, run what
    it RUNs."""
    tmp = tmp_path_factory.mktemp("image")
    sources, command = build_stage_steps()
    context = tmp / "src"
    for source in sources:
        target = context / source
        target.parent.mkdir(parents=True, exist_ok=True)
        if (ROOT / source).is_dir():
            shutil.copytree(ROOT / source, target, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(ROOT / source, target)
    script, src, dest, python = command.split()
    assert (src, dest, python) == ("/src", "/opt/modelfs", "python3")
    venv = tmp / "opt-modelfs"
    result = run(context / script, context, venv, sys.executable, cwd=context)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    yield venv


@pytest.fixture(scope="module")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The operator's wheel and the harness's, built from copies of the tree."""
    tmp = tmp_path_factory.mktemp("wheels")
    tree = tmp / "tree"
    shutil.copytree(
        ROOT,
        tree,
        ignore=shutil.ignore_patterns(
            ".venv", ".git", "__pycache__", "*.egg-info", "build", "dist", ".*_cache"
        ),
    )
    dist = tmp / "dist"
    result = run(
        sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-cache-dir", "--wheel-dir",
        dist, tree, tree / "modelfs" / "testing",
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return {
        "modelfs": next(dist.glob("modelfs-*.whl")),
        "modelfs-testing": next(dist.glob("modelfs_testing-*.whl")),
    }


def metadata(wheel: Path) -> email.message.Message:
    with zipfile.ZipFile(wheel) as archive:
        name = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        return email.parser.Parser().parsestr(archive.read(name).decode())


def test_the_wheel_ships_only_the_operator(wheels: dict[str, Path]) -> None:
    with zipfile.ZipFile(wheels["modelfs"]) as archive:
        names = archive.namelist()
        entry_points = archive.read(
            next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
        ).decode()
    top_level = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert top_level == TOP_LEVEL
    assert not [n for n in names if n.startswith("modelfs/testing")]
    assert "modelfs/cli.py" in names and "modelfs/operator.py" in names
    assert "modelfs/controllers/modelsync.py" in names and "modelfs/api/v1/__init__.py" in names
    assert "pytest11" not in entry_points  # no plugin loaded into every pytest run
    assert "modelfs = modelfs.cli:main" in entry_points
    meta = metadata(wheels["modelfs"])
    assert meta["License-Expression"] == "Apache-2.0"  # an SPDX expression, PEP 639
    requires = meta.get_all("Requires-Dist") or []
    runtime = [r for r in requires if "extra ==" not in r]
    assert not [r for r in runtime if r.startswith(("cryptography", "pytest"))], runtime
    assert f'modelfs-testing=={__version__}; extra == "testing"' in requires


def test_the_harness_is_a_wheel_of_its_own(wheels: dict[str, Path]) -> None:
    with zipfile.ZipFile(wheels["modelfs-testing"]) as archive:
        names = archive.namelist()
    shipped = {n for n in names if not n.startswith("modelfs_testing-")}
    assert shipped and all(n.startswith("modelfs/testing/") for n in shipped), shipped
    assert "modelfs/testing/pytest_plugin.py" in shipped
    assert "modelfs/testing/sandbox.py" in shipped
    assert "modelfs/testing/crds/dataset.baizeai.io_datasets.yaml" in shipped
    assert "modelfs/__init__.py" not in names  # the operator's wheel owns the package
    requires = metadata(wheels["modelfs-testing"]).get_all("Requires-Dist") or []
    assert f"modelfs=={__version__}" in requires
    assert any(r.startswith("cryptography") for r in requires)


def test_versions_and_dependencies_agree() -> None:
    """One version everywhere; the dev extra carries the harness's dependencies, since in a
    checkout the harness is imported from the tree, not installed."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    harness = tomllib.loads((HARNESS / "pyproject.toml").read_text())["project"]
    assert harness["version"] == __version__
    assert project["optional-dependencies"]["testing"] == [f"modelfs-testing=={__version__}"]
    own = [d for d in harness["dependencies"] if not d.startswith("modelfs")]
    assert f"modelfs=={__version__}" in harness["dependencies"]
    assert set(own) <= set(project["optional-dependencies"]["dev"]), own
    assert "cryptography" not in " ".join(project["dependencies"])


def test_the_image_runs_the_operator_and_nothing_else(image_venv: Path) -> None:
    assert not (image_venv / "bin" / "pip").exists(), "no pip (or build tool) in the image"
    help_text = run(image_venv / "bin" / "modelfs", "run", "--help")
    assert help_text.returncode == 0, help_text.stderr
    assert "--health-port" in help_text.stdout and "--metrics-port" in help_text.stdout
    python = image_venv / "bin" / "python"
    # Outside the checkout, so only what is installed is importable.
    imported = run(python, "-c", "import modelfs.operator", cwd=image_venv)
    assert imported.returncode == 0, imported.stderr
    harness = run(python, "-c", "import modelfs.testing", cwd=image_venv)
    assert harness.returncode != 0
    assert f"pip install '{TESTING_EXTRA}'" in harness.stderr, harness.stderr
    sandbox = run(image_venv / "bin" / "modelfs", "sandbox", cwd=image_venv)
    assert sandbox.returncode == 2 and TESTING_EXTRA in sandbox.stderr, sandbox.stderr
    for test_only in ("cryptography", "pytest", "modelfs.testing.controlplane"):
        found = run(python, "-c", f"import {test_only}", cwd=image_venv)
        assert found.returncode != 0, f"{test_only} is in the image"
    site = next((image_venv / "lib").glob("python3*/site-packages"))
    assert not (site / "modelfs" / "testing").exists()
    size = sum(f.stat().st_size for f in image_venv.rglob("*") if f.is_file())
    print(f"\nthe image's virtualenv: {size / 2**20:.1f} MiB")


def test_the_testing_extra_provides_the_harness(wheels: dict[str, Path], tmp_path: Path) -> None:
    """The operator's wheel and the harness's wheel in one virtualenv (what
    `pip install 'modelfs[testing]'` installs): the harness imports, its commands work, and its
    pytest plugin loads only with `-p`."""
    venv = tmp_path / "venv"
    assert run(sys.executable, "-m", "venv", "--without-pip", venv).returncode == 0
    python = venv / "bin" / "python"
    installed = run(
        sys.executable, "-m", "pip", "--python", python, "install", "--no-cache-dir",
        "--disable-pip-version-check", "--quiet", wheels["modelfs"], wheels["modelfs-testing"],
    )  # fmt: skip
    assert installed.returncode == 0, installed.stdout[-3000:] + installed.stderr[-3000:]
    harness = run(python, "-c", "import modelfs.testing.controlplane, modelfs.testing.sandbox")
    assert harness.returncode == 0, harness.stderr
    assert run(venv / "bin" / "modelfs", "sandbox", "--help").returncode == 0
    plain = run(python, "-m", "pytest", "--help", cwd=tmp_path)
    assert plain.returncode == 0 and "--k8s" not in plain.stdout  # not auto-loaded
    asked = run(
        python, "-m", "pytest", "-p", "modelfs.testing.pytest_plugin", "--help", cwd=tmp_path
    )
    assert asked.returncode == 0 and "--k8s" in asked.stdout, asked.stderr[-2000:]


def test_the_hint_is_only_for_a_missing_harness() -> None:
    """Here, in the checkout, the harness is there: a module missing inside it fails as any
    missing module does, and the hint finder answers for `modelfs.testing` alone."""
    import importlib

    import modelfs

    with pytest.raises(ModuleNotFoundError) as missing:
        importlib.import_module("modelfs.testing.no_such_module")
    assert TESTING_EXTRA not in str(missing.value)
    hint = modelfs._TestingHint()
    assert hint.find_spec("modelfs.other", None) is None
    with pytest.raises(ModuleNotFoundError, match=r"pip install 'modelfs\[testing\]'"):
        hint.find_spec("modelfs.testing", None)
