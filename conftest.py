"""The repository's pytest configuration: load the modelfs pytest plugin (the cluster fixtures,
`--k8s`, `--dataset-controller`), which is not auto-loaded wherever modelfs is installed.
Elsewhere: `pytest -p modelfs.testing.pytest_plugin` (with `pip install 'modelfs[testing]'`)."""

pytest_plugins = ["modelfs.testing.pytest_plugin"]
