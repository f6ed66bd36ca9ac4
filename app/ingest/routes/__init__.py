"""The ingest package's HTTP: the ingest endpoints, the rules API, the maintenance windows
API."""

from app.ingest.routes import alerts, rules, windows

routes = [*alerts.routes, *rules.routes, *windows.routes]
