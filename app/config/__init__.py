"""The configuration, read once from the environment and `.env`, then passed down.

Nothing reads the environment at import time: `load_config()` is called by the command line
and by the uvicorn factory, and everything else receives a `Config`. A wrong or missing value
stops start-up with one `ConfigError` line that names the variable.

When no PagerDuty app is configured (neither `PAGERDUTY_CLIENT_ID` nor `PAGERDUTY_APP_ID`),
`pdconnect serve` starts the PagerDuty sandbox (the `sandbox` extra), registers a sandbox app
there and passes its credentials and URLs in as defaults with `PDCONNECT_SANDBOX=1`; only
then may `SECRET_KEY`, `ENCRYPTION_KEYS` and `ADMIN_TOKEN` be left out, and the command line
generates them into the data directory so that a first run needs no configuration at all (see
app/cli/environment.py).

The modules: `model` (Config), `load` (load_config, the `.env` file), `values` (how each
setting is checked, and ConfigError).
"""
