"""Blueprints, registered in one place."""

from flask import Flask

from webapp.api import health, openapi, posts, users
from webapp.api.http import IdConverter, reject_undecodable_query_string


def register_blueprints(app: Flask) -> None:
    # Before any rule is added: rules resolve their converters when registered.
    app.url_map.converters["id"] = IdConverter
    app.before_request(reject_undecodable_query_string)
    app.register_blueprint(health.bp)
    app.register_blueprint(users.bp)
    app.register_blueprint(posts.bp)
    app.register_blueprint(openapi.bp)
