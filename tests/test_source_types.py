"""One realistic example per source type, and the errors users are most likely to hit."""

from __future__ import annotations

import pytest

from modelfs.api.v1 import Model
from modelfs.pkg.dataset import Reason, ResolutionError, resolve, source_config_errors
from tests.builders import model, source, sync


def test_hugging_face_with_a_mirror_endpoint() -> None:
    result = resolve(
        source(
            "HUGGING_FACE",
            {"endpoint": "https://hf-mirror.com", "exclude": "*.bin", "repoType": "MODEL"},
            secret_ref="hf-token",
        ),
        model("Qwen/Qwen2.5-7B-Instruct", version="v2.5.0", name="qwen"),
        sync("qwen", "v2.5.0", uid="1234"),
    )
    manifest = result.dataset.to_manifest()
    assert manifest["metadata"]["name"] == "qwen-v2.5.0"
    assert manifest["spec"]["source"] == {
        "type": "HUGGING_FACE",
        "uri": "huggingface://Qwen/Qwen2.5-7B-Instruct",
        "options": {"endpoint": "https://hf-mirror.com", "exclude": "*.bin", "repoType": "MODEL"},
    }
    assert manifest["spec"]["secretRef"] == "hf-token"
    assert manifest["spec"]["dataSyncRound"] == 1
    assert manifest["metadata"]["labels"] == {
        "app.kubernetes.io/managed-by": "modelfs",
        "model.samzong.dev/model": "qwen",
        "model.samzong.dev/version": "v2.5.0",
    }
    (owner,) = manifest["metadata"]["ownerReferences"]
    assert owner == {
        "apiVersion": "model.samzong.dev/v1",
        "kind": "ModelSync",
        "name": "sync",
        "uid": "1234",
        "controller": True,
        "blockOwnerDeletion": True,
    }
    assert result.notes == ()


def test_hugging_face_revision_is_reported_as_not_pinned() -> None:
    result = resolve(
        source("HUGGING_FACE"),
        model("org/name", repo_config={"revision": "v1.0"}),
        sync(),
    )
    assert "revision" not in result.dataset.spec.source.options
    (note,) = result.notes
    assert "'v1.0'" in note and "not pinned" in note and "repoConfig.revision" in note


def test_model_scope_model() -> None:
    result = resolve(
        source("MODEL_SCOPE", {"repoType": "MODEL", "include": "*.safetensors"}),
        model("qwen/Qwen2.5-7B-Instruct"),
        sync(),
    )
    assert result.uri == "modelscope://qwen/Qwen2.5-7B-Instruct"
    assert result.dataset.spec.source.options == {"repoType": "MODEL", "include": "*.safetensors"}


def test_s3_bucket_on_minio() -> None:
    result = resolve(
        source(
            "S3",
            {"provider": "MINIO", "endpoint": "http://minio.storage:9000", "syncMode": "copy"},
            secret_ref="minio-creds",
        ),
        model("models/llama-3-8b"),
        sync(),
    )
    assert result.uri == "s3://models/llama-3-8b"
    assert result.dataset.spec.source.options == {
        "provider": "MINIO",
        "endpoint": "http://minio.storage:9000",
        "syncMode": "copy",
    }
    assert result.dataset.spec.secret_ref == "minio-creds"


def test_s3_on_aws_needs_a_region() -> None:
    with pytest.raises(ResolutionError) as caught:
        resolve(source("S3"), model("models/llama"), sync())
    assert caught.value.kind == "ModelSource"
    assert caught.value.field == "spec.config.region"
    assert caught.value.reason == Reason.INVALID_CONFIG


def test_git_repo_pinned_to_a_commit() -> None:
    result = resolve(
        source("GIT", {"endpoint": "https://git.example.com", "depth": "1"}),
        model("ml/tiny-llama.git", repo_config={"commit": "9f2c1e7"}),
        sync(),
    )
    assert result.uri == "https://git.example.com/ml/tiny-llama.git"
    assert result.dataset.spec.source.options == {"depth": "1", "commit": "9f2c1e7"}


def test_git_revision_points_to_branch_or_commit() -> None:
    with pytest.raises(ResolutionError) as caught:
        resolve(source("GIT"), model("https://h/o/r.git", repo_config={"revision": "x"}), sync())
    assert caught.value.field == "spec.versionConfigs[v1].repoConfig.revision"
    assert "branch" in caught.value.message and "commit" in caught.value.message


def test_http_path_under_the_endpoint() -> None:
    result = resolve(
        source("HTTP", {"endpoint": "https://files.example.com/models/"}),
        model("/gpt2/"),
        sync(),
    )
    assert result.uri == "https://files.example.com/models/gpt2/"
    assert result.dataset.spec.source.options == {}


def test_pvc_path() -> None:
    result = resolve(source("PVC"), model("shared-weights/llama/3.1"), sync())
    assert result.uri == "pvc://shared-weights/llama/3.1"


def test_nfs_export() -> None:
    result = resolve(source("NFS"), model("nfs.storage.internal/exports/models/qwen"), sync())
    assert result.uri == "nfs://nfs.storage.internal/exports/models/qwen"
    with_endpoint = resolve(
        source("NFS", {"endpoint": "10.0.0.5"}), model("/exports/models/qwen"), sync()
    )
    assert with_endpoint.uri == "nfs://10.0.0.5/exports/models/qwen"


def test_conda_environment() -> None:
    result = resolve(
        source("CONDA", {"python": "3.11"}),
        model("vllm-env", repo_config={"pipRequirementsTxt": "vllm==0.6.3"}),
        sync(),
    )
    assert result.uri == "conda://vllm-env?python=3.11"
    assert result.dataset.spec.source.options == {"pipRequirementsTxt": "vllm==0.6.3"}


def test_reference() -> None:
    result = resolve(source("REFERENCE"), model("team-b/qwen-v2-5-0"), sync())
    assert result.uri == "dataset://team-b/qwen-v2-5-0"


def test_several_include_patterns_are_refused_with_a_way_out() -> None:
    bad = source("HUGGING_FACE", {"include": "*.safetensors,*.json", "exclude": "*.bin"})
    (error,) = source_config_errors(bad)
    assert error.field == "spec.config.include"
    assert error.reason == Reason.INVALID_CONFIG
    assert "ONE glob" in error.message
    assert "exclude" in error.message  # the suggested alternative


def test_unknown_key_lists_the_allowed_keys() -> None:
    (error,) = source_config_errors(source("MODEL_SCOPE", {"region": "us-east-1"}))
    assert error.field == "spec.config.region"
    assert "allowed keys: exclude, include, repoType, revision" in error.message


def test_whitespace_in_a_value_is_refused() -> None:
    (error,) = source_config_errors(source("HUGGING_FACE", {"exclude": "*.bin *.pt"}))
    assert "whitespace" in error.message


def test_offline_is_refused_for_hugging_face() -> None:
    (error,) = source_config_errors(source("HUGGING_FACE", {"offline": "true"}))
    assert error.field == "spec.config.offline"


def test_secret_ref_on_a_type_that_reads_no_secret() -> None:
    (error,) = source_config_errors(source("PVC", secret_ref="creds"))
    assert error.field == "spec.secretRef"
    assert error.reason == Reason.SECRET_NOT_USED


def test_unknown_version_names_the_available_ones() -> None:
    with pytest.raises(ResolutionError) as caught:
        resolve(source("PVC"), model("pvc/path", version="v1"), sync(version="v9"))
    assert caught.value.kind == "ModelSync"
    assert caught.value.field == "spec.version"
    assert "available: v1" in caught.value.message


def test_invalid_repo_says_what_the_type_expects() -> None:
    with pytest.raises(ResolutionError) as caught:
        resolve(source("MODEL_SCOPE"), model("https://modelscope.cn/qwen"), sync())
    assert caught.value.field == "spec.versionConfigs[v1].repo"
    assert "org/model" in caught.value.message


def test_storage_becomes_the_volume_claim_template_version_over_model() -> None:
    result = resolve(
        source("PVC"),
        Model.model_validate(
            {
                "metadata": {"name": "mdl", "namespace": "team-a"},
                "spec": {
                    "sourceRef": "src",
                    "storage": {"storageClassName": "fast", "size": "200Gi"},
                    "versionConfigs": {
                        "v1": {"repo": "pvc/path", "storage": {"size": "50Gi"}},
                    },
                },
            }
        ),
        sync(),
    )
    assert result.dataset.spec.volume_claim_template == {
        "spec": {
            "accessModes": ["ReadWriteMany"],
            "resources": {"requests": {"storage": "50Gi"}},
            "storageClassName": "fast",
        }
    }


def test_no_storage_leaves_the_dataset_default() -> None:
    result = resolve(source("PVC"), model("pvc/path"), sync())
    assert "volumeClaimTemplate" not in result.dataset.to_manifest()["spec"]
