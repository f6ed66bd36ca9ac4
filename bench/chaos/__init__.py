"""The reliability harness: nothing is lost when things break.

    .venv/bin/python -m bench.chaos [--quick] [--events N] [--outage S] [--db-down S] [--only abcd]

Four scenarios against real `pdconnect` processes, a PostgreSQL of the harness's own and the
PagerDuty sandbox (see bench/chaos/scenarios.py), each under a load of trigger → acknowledge →
resolve chains spread over many routing keys. One table row each: events accepted (202),
delivered, lost, out of order, over budget; lost, out of order and over budget must be 0.
Exits 1 when a check fails.
"""
