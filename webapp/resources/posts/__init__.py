"""The posts resource: model, schemas, repository, service, routes."""
