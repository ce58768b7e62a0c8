"""The reusable machinery. Nothing here imports webapp.resources: resources declare what
core needs to know (constraint messages, soft-delete cascades, sort keys) and core reads it."""
