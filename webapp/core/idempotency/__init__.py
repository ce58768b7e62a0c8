"""Safe retries of POST requests with the Idempotency-Key header (docs/idempotency.md)."""
