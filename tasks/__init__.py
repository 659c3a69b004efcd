"""llmfab's Invoke tasks, collected for `fab` (see fabfile.py)."""

from invoke import Collection

from . import artifacts, bench, bundle, check, engine, model, ping, planning, prep, undo, webui
from .options import whole_numbers_fail_in_one_line

whole_numbers_fail_in_one_line()

ns = Collection()
ns.add_task(ping.ping)
ns.add_task(prep.prep)
ns.add_task(undo.undo)
ns.add_task(bundle.export_bundle)
ns.add_task(artifacts.fetch_artifacts)
ns.add_task(planning.plan)
ns.add_task(check.check)
ns.add_task(bench.bench)
ns.add_task(model.model)
ns.add_task(webui.webui)
ns.add_task(engine.deploy)
ns.add_task(engine.smoke)
ns.add_task(engine.status)
ns.add_task(engine.logs)
ns.add_task(engine.stop)
