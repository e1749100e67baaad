"""modelfs: a Kubernetes operator for declarative LLM model weight management."""

__version__ = "0.1.0"
