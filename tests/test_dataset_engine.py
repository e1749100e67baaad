"""DatasetEngine's parts that need no cluster: the pinned version, the rendered controller
config, the controller's command line, and the errors when the build is missing."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from modelfs.testing import dataset_engine
from modelfs.testing.dataset_engine import (
    DATASET_VERSION,
    DatasetEngine,
    DatasetEngineError,
    dataset_crd_path,
    find_dataset_controller,
    render_config,
)

REPO = Path(__file__).resolve().parents[1]


def versions_env() -> dict[str, str]:
    lines = (REPO / "hack" / "versions.env").read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))


def test_version_matches_hack_versions_env_and_the_wrapper_module() -> None:
    assert versions_env()["DATASET_VERSION"] == DATASET_VERSION
    go_mod = (REPO / "hack" / "dataset" / "go.mod").read_text()
    assert f"github.com/BaizeAI/dataset {DATASET_VERSION}" in go_mod
    assert (
        'import _ "github.com/BaizeAI/dataset/cmd"'
        in (REPO / "hack" / "dataset" / "tools.go").read_text()
    )
    assert (
        "github.com/BaizeAI/dataset " + DATASET_VERSION
        in (REPO / "hack" / "dataset" / "go.sum").read_text()
    )


def test_config_is_the_charts_with_a_settable_backoff_limit() -> None:
    config = yaml.safe_load(render_config())
    assert config["enable_cascading_deletion"] is False
    job = yaml.safe_load(config["dataset_job_spec_yaml"])  # a YAML string, as the chart renders
    assert job["backoffLimit"] == 4
    assert (job["completionMode"], job["completions"], job["parallelism"]) == ("NonIndexed", 1, 1)
    pod = job["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    assert pod["securityContext"] == {"runAsUser": 0}
    (container,) = pod["containers"]
    assert container["image"] == "ghcr.io/baizeai/dataset-data-loader:0.1.0"
    assert container["command"] == ["/usr/local/bin/data-loader"]
    assert container["resources"]["limits"] == {"cpu": "2000m", "memory": "2000Mi"}

    fast = yaml.safe_load(yaml.safe_load(render_config(backoff_limit=0))["dataset_job_spec_yaml"])
    assert fast["backoffLimit"] == 0
    with pytest.raises(ValueError, match="backoff_limit"):
        render_config(backoff_limit=-1)


def test_missing_build_names_the_make_target(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MODELFS_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv("MODELFS_CONTROLPLANE_BUILD", raising=False)
    with pytest.raises(DatasetEngineError, match=r"make dataset-controller"):
        find_dataset_controller()
    with pytest.raises(DatasetEngineError, match=r"make dataset-controller"):
        dataset_crd_path()
    with pytest.raises(DatasetEngineError, match=r"make dataset-controller"):
        DatasetEngine(tmp_path / "kubeconfig").start()


def test_the_cache_layout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODELFS_CACHE_DIR", str(tmp_path))
    folder = tmp_path / f"dataset-{DATASET_VERSION}"
    assert dataset_engine.dataset_cache_dir() == folder
    (folder / "bin").mkdir(parents=True)
    (folder / "crd").mkdir()
    (folder / "bin" / "dataset-controller").write_text("#!/bin/sh\n")
    (folder / "bin" / "dataset-controller").chmod(0o755)
    (folder / "crd" / "dataset.baizeai.io_datasets.yaml").write_text("kind: X\n")
    assert find_dataset_controller() == folder / "bin" / "dataset-controller"
    assert dataset_crd_path() == folder / "crd" / "dataset.baizeai.io_datasets.yaml"


def test_controller_runs_out_of_cluster_without_leader_election_or_ports(tmp_path: Path) -> None:
    engine = DatasetEngine(tmp_path / "kc", binary=tmp_path / "dc", crd=tmp_path / "crd.yaml")
    engine.log_dir = tmp_path
    argv = engine.controller_argv()
    assert argv[0] == str(tmp_path / "dc")
    assert f"--kubeconfig={tmp_path / 'kc'}" in argv
    assert f"--config={tmp_path / 'dataset-controller-config.yaml'}" in argv
    assert "--leader-elect=false" in argv
    assert "--metrics-bind-address=0" in argv
    assert "--health-probe-bind-address=0" in argv
    sim = DatasetEngine(tmp_path / "kc", namespaces=["a", "b"], round_duration=0.25)
    assert sim.simulator_argv()[1:3] == ["-m", "modelfs.testing.podsim"]
    assert sim.simulator_argv()[-4:] == ["--namespace", "a", "--namespace", "b"]
    assert "250ms" in sim.simulator_argv()


def test_not_started_engine() -> None:
    engine = DatasetEngine("kc")
    assert not engine.alive()
    assert engine.log_text() == ""
    engine.stop()  # harmless
