"""`python -m modelfs.testing.fake_dataset --kubeconfig PATH [...]`: see cli.py."""

from modelfs.testing.fake_dataset.cli import main

raise SystemExit(main())
