"""Benchmarks of modelfs against a local control plane (not tests: `make bench`)."""
