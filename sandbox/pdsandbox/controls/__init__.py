"""`{base}/_sandbox/...`: switches and peepholes for tests, and injectable faults. Not part
of PagerDuty."""
