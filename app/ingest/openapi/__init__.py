"""The ingest API's part of the OpenAPI document (assembled by app/openapi.py): our native
format and Alertmanager's webhook, PagerDuty's drop-ins, and the tenant's routing rules and
severity map."""
