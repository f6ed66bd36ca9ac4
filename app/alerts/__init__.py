"""An alert's life: per tenant and dedup key, where its trigger went and when it opened, was
acknowledged and resolved. Ingest reads it to send an alert's later events where the alert
is, not where today's rules would send a new one."""
