"""Who is on call now for each connected service, read from PagerDuty's REST API with an OAuth
account's token (its escalation policy's levels, and who is on call on each until when), kept
in PostgreSQL and read again in the background while readers see the last read."""
