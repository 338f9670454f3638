"""The harness: the `bench` command line and the orchestration of measurements, in rooms that follow the data.

    cli  ->  orchestrate  ->  measure        (fleet: orchestrate on other machines)
     |
     +-->  history (the store)   gate (the regression decision)   reports/ (tables, figures)

Each room's `__init__` says what it owns and what it may import; tests/unit/test_layering.py enforces it.
"""
