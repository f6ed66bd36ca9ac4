"""Hypothesis settings for the fuzz tests.

"ci" (the default) is reproducible: examples derive from each test's source rather than a
random seed, nothing is written to an example database, and no per-example deadline can fail
a run on a busy machine. `HYPOTHESIS_PROFILE=deep` explores further from a random seed, for a
run by hand after changing a parser.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci",
    derandomize=True,
    database=None,
    deadline=None,
    max_examples=100,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "deep",
    parent=settings.get_profile("ci"),
    derandomize=False,
    max_examples=2000,
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
