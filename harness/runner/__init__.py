"""The runner: plan -> shard -> skip finished -> batch -> records -> aggregate (``harness.runner.core``)."""
