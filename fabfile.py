"""Entry point for `fab`: llmfab's tasks. Run `fab --list` to see them."""

from tasks import ns  # noqa: F401  (Fabric loads the `ns` collection from here)
