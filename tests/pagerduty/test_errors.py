import pytest

from app.pagerduty.errors import (
    ConsentDenied,
    Forbidden,
    InsufficientScope,
    InvalidIdToken,
    InvalidInstallConfig,
    InvalidRequest,
    MalformedResponse,
    NotFound,
    OAuthError,
    PagerDutyError,
    RetryLater,
    Unauthorized,
)


@pytest.mark.parametrize(
    ("error", "parent"),
    [
        (RetryLater("PagerDuty failed (HTTP 503)"), PagerDutyError),
        (MalformedResponse("the body is not JSON"), RetryLater),
        (Unauthorized(), PagerDutyError),
        (Forbidden(), PagerDutyError),
        (NotFound(), PagerDutyError),
        (InvalidRequest("Invalid Input Provided"), PagerDutyError),
        (OAuthError("invalid_grant"), PagerDutyError),
        (ConsentDenied(), OAuthError),
        (InsufficientScope(granted={"openid"}, required="write"), OAuthError),
        (InvalidIdToken("it has expired"), OAuthError),
        (InvalidInstallConfig("account.subdomain", "is missing"), PagerDutyError),
    ],
)
def test_tree_and_sentences(error: PagerDutyError, parent: type[PagerDutyError]) -> None:
    assert isinstance(error, parent)
    text = str(error)
    assert text[0].isupper()
    assert text.endswith(".")
    assert "\n" not in text


def test_retry_later_says_when() -> None:
    assert str(RetryLater("PagerDuty failed (HTTP 503)")) == (
        "PagerDuty failed (HTTP 503). Try again later."
    )
    error = RetryLater(
        "PagerDuty is rate limiting requests (HTTP 429)", retry_after=30.0, status=429
    )
    assert str(error).endswith("Try again in 30 seconds.")
    assert (error.retry_after, error.status) == (30.0, 429)


def test_foreign_text_is_cleaned_and_cut() -> None:
    error = InvalidRequest("bad\r\n\x1b[31mthing" + "x" * 1000, ["one\ntwo"] * 50, status=400)
    assert "\x1b" not in str(error)
    assert "\r" not in str(error)
    assert len(error.message) <= 300
    assert error.errors[0] == "one two"
    assert len(error.errors) == InvalidRequest.MAX_ERRORS


def test_oauth_error_code_is_bounded() -> None:
    error = OAuthError("x" * 500 + "\n", "desc")
    assert len(error.error) <= 64
    assert "\n" not in str(error)
