"""The reliability harness: nothing is lost when things break.

    .venv/bin/python -m bench.chaos [--quick] [--events N] [--outage S] [--db-down S]
        [--hang S] [--trickle S] [--backlog N] [--backlog-keys K] [--only abcdefghi]

Nine scenarios against real `pdconnect` processes, a PostgreSQL of the harness's own and the
PagerDuty sandbox (see bench/chaos/scenarios.py), each under a load of trigger → acknowledge →
resolve chains: killed processes, PostgreSQL restarted, killed and frozen, PagerDuty down, a
scaled-out fleet, one routing key hanging beside healthy ones, answers that outlive the lease,
and a large backlog. One table row each: events accepted (202), delivered, lost, out of order,
over budget, 500s; lost, out of order, over budget and 500s must be 0, and a healthy tenant's
p99 time to page within 1 s in (e). Exits 1 when a check fails.
"""
