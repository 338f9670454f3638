"""What every layer shares: errors, atomic file writes, terminal output, the validated config.

This package is the ground floor: it imports nothing else of ours, so `fer/`, `compression/`, `backends/`
and `reports/` can use it without standing on the CLI and orchestrator (`harness/`).
"""
