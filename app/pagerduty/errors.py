"""Errors of the PagerDuty clients, named by what the caller should do next.

    PagerDutyError
    ├── RetryLater               5xx, 429, timeouts, connection errors: try again later
    │   └── MalformedResponse    PagerDuty answered in a form we do not understand
    ├── Unauthorized             401: the token expired or was revoked; reconnect
    ├── Forbidden                403: a scope or a permission is missing
    ├── NotFound                 404: the thing is gone
    ├── InvalidRequest           400, 402, 422 (any other 4xx): fix the input, never retry as is
    ├── OAuthError               the identity service refused (authorize or token endpoint)
    │   ├── ConsentDenied        the user declined on PagerDuty's consent page
    │   ├── InsufficientScope    the granted scopes lack what we need
    │   └── InvalidIdToken       the id_token failed verification
    └── InvalidInstallConfig     a Simple Install `config` failed validation: refuse the callback

Foreign exceptions (httpx2, authlib, joserfc) are translated once, where they are caught,
with `raise … from exc`. Every str() is a sentence a person can act on and carries no secret:
text that came from PagerDuty or the browser is cleaned and cut short first.
"""

from collections.abc import Iterable

from app.pagerduty._text import clean_message


class PagerDutyError(Exception):
    """Base of every error this package raises."""


class RetryLater(PagerDutyError):
    """PagerDuty could not take the request now; the same request may succeed later."""

    def __init__(
        self, reason: str, *, retry_after: float | None = None, status: int | None = None
    ) -> None:
        self.reason = reason
        self.retry_after = retry_after
        self.status = status
        if retry_after is None:
            sentence = f"{reason}. Try again later."
        else:
            sentence = f"{reason}. Try again in {retry_after:g} seconds."
        super().__init__(sentence)


class MalformedResponse(RetryLater):
    """PagerDuty answered, but not in the documented form (a gateway page, a changed field)."""

    def __init__(self, what: str, *, status: int | None = None) -> None:
        super().__init__(f"PagerDuty answered in an unexpected form: {what}", status=status)


def _with_detail(sentence: str, message: str) -> str:
    return f"{sentence}: {message}" if message else sentence


class Unauthorized(PagerDutyError):
    status = 401

    def __init__(self, message: str = "") -> None:
        self.message = clean_message(message)
        head = _with_detail("PagerDuty refused the access token (HTTP 401)", self.message)
        super().__init__(f"{head}. Reconnect the PagerDuty account.")


class Forbidden(PagerDutyError):
    status = 403

    def __init__(self, message: str = "") -> None:
        self.message = clean_message(message)
        head = _with_detail(
            "PagerDuty refused the request for lack of a scope or permission (HTTP 403)",
            self.message,
        )
        super().__init__(f"{head}.")


class NotFound(PagerDutyError):
    status = 404

    def __init__(self, message: str = "") -> None:
        self.message = clean_message(message)
        head = _with_detail("PagerDuty has no such resource (HTTP 404)", self.message)
        super().__init__(f"{head}. It was probably deleted in PagerDuty.")


class InvalidRequest(PagerDutyError):
    """PagerDuty will never accept this request as it is."""

    MAX_ERRORS = 20

    def __init__(
        self,
        message: str,
        errors: Iterable[str] = (),
        *,
        status: int | None = None,
        code: int | None = None,
    ) -> None:
        self.message = clean_message(message) or "Invalid request"
        self.errors = tuple(clean_message(error) for error in errors)[: self.MAX_ERRORS]
        self.status = status
        self.code = code
        detail = f" ({'; '.join(self.errors)})" if self.errors else ""
        if status is None:
            # Refused on our side, before sending: PagerDuty would refuse it too.
            head = "The request to PagerDuty is invalid"
        else:
            head = f"PagerDuty refused the request (HTTP {status})"
        super().__init__(f"{head}: {self.message}{detail}.")


class OAuthError(PagerDutyError):
    """The identity service refused: `error` is the OAuth error code (e.g. invalid_grant)."""

    def __init__(
        self, error: str, description: str | None = None, *, sentence: str | None = None
    ) -> None:
        self.error = clean_message(error, limit=64) or "unknown_error"
        self.description = clean_message(description) if description else None
        if sentence is None:
            detail = f" ({self.description})" if self.description else ""
            sentence = f"PagerDuty refused the authorization: {self.error}{detail}."
        super().__init__(sentence)


class ConsentDenied(OAuthError):
    def __init__(self, description: str | None = None) -> None:
        super().__init__(
            "access_denied",
            description,
            sentence="The PagerDuty user declined to authorize the app.",
        )


class InsufficientScope(OAuthError):
    def __init__(
        self, *, granted: Iterable[str], required: str, access_token: str | None = None
    ) -> None:
        self.granted = frozenset(granted)
        self.required = required
        # The token PagerDuty issued anyway, so the caller can revoke it; never in messages.
        self.access_token = access_token
        shown = " ".join(sorted(self.granted)) or "none"
        super().__init__(
            "insufficient_scope",
            f"granted {shown}, needs {required}",
            sentence=(
                f"PagerDuty granted the scopes '{clean_message(shown, limit=100)}' but the "
                f"'{required}' scope is needed; check that the app is registered for "
                "Classic User OAuth with that scope."
            ),
        )


class InvalidIdToken(OAuthError):
    def __init__(self, reason: str) -> None:
        super().__init__(
            "invalid_id_token",
            reason,
            sentence=f"PagerDuty's id_token failed verification: {clean_message(reason)}.",
        )


class InvalidInstallConfig(PagerDutyError):
    """`field` is the path of the refused value, e.g. `integration_keys[2].integration_key`."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        self.message = message
        super().__init__(f"The Simple Install config was refused: {field}: {message}.")
