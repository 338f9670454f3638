"""CLI, config, artifact cache, measurement loop, statistics, fingerprint, results store, regression test."""
