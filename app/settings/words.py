"""What the settings forms say when they refuse something, in words for people.

The domains refuse with an `InputError` naming the field the way the admin API does
(`routes[2].conditions[0].value: is not a valid regular expression: missing ): (`): right for
an API client, opaque beside a form. Here each refusal becomes the form field it concerns and
a sentence about what to change; the API's messages stay as they are.
"""

from __future__ import annotations

import re

from app.errors import ConflictError, InputError

# Where a message goes when it concerns the whole form rather than one of its fields.
WHOLE_FORM = "form"

FieldErrors = dict[str, str]

# RE2's words for the commonest slips, and what a person would say.
_REGEX_SLIPS = (
    ("missing ):", "That regular expression is missing a ')'."),
    ("unexpected ):", "That regular expression has a ')' that closes nothing."),
    ("missing ]:", "That regular expression is missing a ']'."),
    ("trailing \\", "That regular expression ends with a lone backslash."),
    (
        "missing argument to repetition operator",
        "That regular expression has a repetition (*, + or ?) with nothing before it to repeat.",
    ),
    ("invalid character class range", "That regular expression has a range backwards, like z-a."),
    ("invalid escape sequence", "That regular expression has an escape (\\…) RE2 does not know."),
)
_NOT_VALID = "is not a valid regular expression: "
_RULE_FIELD = re.compile(r"^routes\[\d+\]\.?(?P<rest>.*)$")


def regex_words(message: str) -> str:
    if message.startswith(_NOT_VALID):
        detail = message[len(_NOT_VALID) :]
        for slip, words in _REGEX_SLIPS:
            if detail.startswith(slip):
                return words
        return f"That regular expression is not valid ({detail})."
    if message.startswith("a regex of"):
        return f"A regular expression here is {message[len('a regex of ') :]}."
    if message.startswith("is "):
        return f"That regular expression {message}."
    # RE2 refusing a construct names it, and how to do without it where there is a way.
    return f"That regular expression cannot be used: {message}."


def rule_errors(exc: InputError) -> FieldErrors:
    """A refused rule (from `save_rules`) as the add-rule form's field and a sentence."""
    found = _RULE_FIELD.match(exc.field)
    where = found.group("rest") if found else exc.field
    message = exc.message
    if where == "name":
        if message == "required":
            return {"name": "Give the rule a name."}
        return {"name": f"A rule's name is {message}."}
    if where.endswith(".field"):
        return {
            "field": "Alerts have no such field. Use labels.<name> (for example labels.team) "
            "or one of: severity, source, component, group, class, summary."
        }
    if where.endswith(".op"):
        return {"op": "Choose equals, matches regex or exists."}
    if where.endswith(".value"):
        if message == "required: a string":
            return {"value": "Type the value to compare with, or choose “exists”."}
        if message.startswith("at most"):
            return {"value": f"That value is too long: {message}."}
        return {"value": regex_words(message)}
    if where.startswith("service_ids"):
        if message.startswith("no such service"):
            return {
                "service_ids": "One of the ticked services is no longer connected. "
                "Reload the page and tick again."
            }
        return {"service_ids": "Tick at least one service."}
    if where == "" and exc.field == "routes":
        return {WHOLE_FORM: f"You have as many rules as this deployment allows ({message})."}
    return {WHOLE_FORM: f"The rule was not saved: {message}."}


def severity_errors(exc: InputError) -> FieldErrors:
    """A refused severity table (from `parse_severity_lines` or `parse_severity_map`)."""
    field, message = exc.field, exc.message
    if field.startswith("line "):
        return {
            "table": f"Line {field[5:]} is not of the form name = severity "
            "(for example: sev0 = critical)."
        }
    if field == "default":
        return {"default": "Choose one of critical, error, warning or info."}
    if field.startswith("overrides."):
        name = field[len("overrides.") :]
        if message.startswith("must be one of"):
            return {
                "table": f"“{name}” must map to critical, error, warning or info "
                "(PagerDuty knows only these four)."
            }
        if message.startswith("is the same name as"):
            return {"table": f"“{name}” {message[3:]}: keep one of them."}
        return {"table": f"“{name}”: the {message}."}
    if field == "overrides" and message.startswith("at most"):
        return {"table": f"Too many names: {message}."}
    return {"table": f"The table was not saved: {message}."}


def key_errors(exc: InputError | ConflictError) -> FieldErrors:
    """A refused integration key (manual form, or a new key for a broken service)."""
    field, message = exc.field, exc.message
    if field == "name":
        if message == "is required":
            return {"name": "Give the service a name, as you will see it in rules and deliveries."}
        return {"name": f"The name {message}."}
    if field == "routing_key":
        if message == "is required":
            return {"routing_key": "Paste the integration key from PagerDuty."}
        if "already connected" in message:
            return {"routing_key": "This key is already connected here."}
        if message.startswith("must be PagerDuty's"):
            return {
                "routing_key": "That does not look like a PagerDuty integration key: those are "
                "32 letters and digits, copied from the service's Integrations tab."
            }
        return {"routing_key": f"The key {message}."}
    if field == "api":
        return {"api": "Choose the kind of key: Events API v2 or v1."}
    if field == "region":
        return {"region": "Choose the region where you sign in to PagerDuty: US or EU."}
    if field == "services":
        return {WHOLE_FORM: f"{message[0].upper()}{message[1:]}."}
    return {WHOLE_FORM: f"The key was not added: {message}."}
