"""The ingest package's HTTP: the ingest endpoints and the rules API."""

from app.ingest.routes import alerts, rules

routes = [*alerts.routes, *rules.routes]
