"""The comments resource: model, schemas, repository, service, routes."""
