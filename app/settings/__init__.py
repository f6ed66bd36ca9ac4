"""The tenant's settings screens, all in one place: the settings page itself (connections,
services, routing rules, severity table, recent deliveries), connecting PagerDuty, the service
picker, disconnecting, and an event's delivery page. Each module holds its routes; the domain
packages do the work and never flash, redirect or render."""

from app.settings import connect, deliveries, disconnect, page, picker, rules

routes = [
    *page.routes,
    *connect.routes,
    *picker.routes,
    *disconnect.routes,
    *deliveries.routes,
    *rules.routes,
]
