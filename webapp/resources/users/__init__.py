"""The users resource: model, schemas, repository, service, routes."""
