"""Telling a person where to remove the app's access in PagerDuty, when pdconnect could not.

PagerDuty documents no endpoint for an app to revoke a user's token: only "Revoke All Tokens"
in App Registration, which cuts off every customer at once. Its support pages say an OAuth
app's access is revoked from the profile page of the user who authorized it, whose User
Settings tab (My Profile > User Settings) is where linked applications are managed. Only that
user can be named: a PagerDuty user id is all the id_token told us.
"""

from __future__ import annotations

WHERE = "My Profile > User Settings"


def revoke_by_hand(*, pd_user_id: str | None, subdomain: str | None) -> str:
    """The step for a disconnected account whose token PagerDuty did not confirm revoked."""
    account = f" {subdomain}" if subdomain else ""
    user = f" (PagerDuty user {pd_user_id})" if pd_user_id else ""
    return (
        "PagerDuty did not confirm that this app's access was revoked (PagerDuty documents no "
        f"way for an app to do it). To remove it, the user who connected the account{account}"
        f"{user} opens {WHERE} in PagerDuty and revokes this app among their applications."
    )


def revoke_refused_grant() -> str:
    """The same, said to the person who just authorized a connection pdconnect refused."""
    return (
        "PagerDuty may still list this app as authorized by you: remove it in PagerDuty under "
        f"{WHERE}."
    )
