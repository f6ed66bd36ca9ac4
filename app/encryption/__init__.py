"""Secrets at rest under older ENCRYPTION_KEYS: finding them and re-encrypting them."""
