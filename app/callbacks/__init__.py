"""Callbacks to the vendor's product: signed (Standard Webhooks), durable, ordered per alert.

Other domains record them inside their own transactions (`emit.py`: an incident's change from
PagerDuty's webhooks, a delivery that failed for good or is held, a connection's change); the
sender (`sender.py`), beside the dispatcher, posts them to the tenant's receiver or the global
PDCONNECT_CALLBACK_URL and records every attempt. `signing.py` is the scheme, `store.py` the
SQL, `routes.py` the operator's API.

    emit ──▶ queued ──claim (lease, token + 1)──▶ sending ──▶ delivered · failed
               ▲                                    │
               └──────── retry (backoff) ───────────┘
"""
