"""The REST API (api.pagerduty.com, api.eu.pagerduty.com), its JSON shapes and the seeded
accounts."""
