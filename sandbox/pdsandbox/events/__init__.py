"""The Events API (events.pagerduty.com, events.eu.pagerduty.com): v2 alerts, change events
and v1, their rules and answers, rate limits, the incidents they open and the arrival log."""
