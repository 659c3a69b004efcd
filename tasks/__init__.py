"""llmfab's Invoke tasks, collected for `fab` (see fabfile.py)."""

from invoke import Collection

from . import bundle, prep

ns = Collection()
ns.add_task(prep.prep)
ns.add_task(bundle.export_bundle)
