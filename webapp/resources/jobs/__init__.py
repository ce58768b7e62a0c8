"""The jobs resource: the state and result of a job a request queued (Prefer: respond-async)."""
