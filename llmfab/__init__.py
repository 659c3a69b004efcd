"""llmfab: prepare GPU nodes and deploy multi-node LLM serving, over SSH or from bundles."""

__version__ = "0.1.0"
