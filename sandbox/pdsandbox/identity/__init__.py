"""The identity service (identity.pagerduty.com) and the web app's consent pages: authorize,
Simple Install, tokens, OAuth grants, signing keys, JWKS and OpenID discovery."""
