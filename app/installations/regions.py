"""The PagerDuty service region of a connection whose answer carries none.

OAuth reads an account's region from the id_token. A pasted key and a Simple Install answer
say nothing of it, and PagerDuty is not known to forward an EU key sent to the US events host,
so the admin names it; when nobody asked, the deployment's PAGERDUTY_REGION stands in.
"""

from __future__ import annotations

from app.errors import InputError
from app.pagerduty.hosts import REGIONS

REGION_LABELS = {"us": "US", "eu": "EU"}
# What an admin recognises their region by: where they sign in to PagerDuty.
REGION_CHOICES = {
    "us": "US (you sign in at app.pagerduty.com)",
    "eu": "EU (you sign in at app.eu.pagerduty.com)",
}


def read_region(value: object, default: str) -> str:
    """The region an admin named: one of REGIONS; None (not given) is `default`."""
    if value is None:
        return default
    if not isinstance(value, str) or value not in REGIONS:
        raise InputError("region", "must be us or eu, the service region of the PagerDuty account")
    return value
