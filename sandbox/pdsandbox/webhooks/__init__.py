"""v3 webhooks: payloads, signatures, delivery with retries, and the delivery log."""
