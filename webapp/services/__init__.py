"""Use cases. Services raise domain errors and own transaction boundaries outside requests."""
