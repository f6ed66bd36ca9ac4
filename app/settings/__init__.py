"""The tenant's settings screens, one page per section of the navigation: Connection (the
connected accounts and their services, connecting PagerDuty, the service picker,
disconnecting), Routing (rules and severities), Maintenance (windows), Deliveries (the history
and an event's page), Analytics (how paging goes, and targets), Activity (the audit log in
words) and Keys (ingest keys). Each module holds its routes; the domain packages do the work
and never flash, redirect or render."""

from app.settings import (
    activity,
    analytics,
    connect,
    deliveries,
    disconnect,
    keys,
    maintenance,
    page,
    picker,
    rules,
)

routes = [
    *page.routes,
    *connect.routes,
    *picker.routes,
    *disconnect.routes,
    *deliveries.routes,
    *analytics.routes,
    *rules.routes,
    *maintenance.routes,
    *activity.routes,
    *keys.routes,
]
