"""How paging goes, per tenant and per service: alerts, incidents, suppressed events, delivery
success, time to page, MTTA and MTTR, noise, busiest sources, and breaches of the tenant's
acknowledge and resolve targets. Figures are read from hourly rollups (rollup.py folds finished
events and changed alert lives into them in the background), never from the outbox itself."""
