"""Incidents beyond webhooks: reconciling open alerts' incident states against PagerDuty's
REST API when webhooks went quiet (reconcile.py), and notes on an alert's incident, added
through the API and kept when PagerDuty's webhooks bring them (notes.py, routes.py).

Both need an OAuth connection's REST access, which the installations domain owns (token
refresh, needs-reconnect): it is handed in as a `RestAccess` (access.py), never imported."""
