"""The peer: GET user and the posts list written as the Flask-SQLAlchemy and marshmallow
docs teach them (db.session.get, schema.dump, jsonify, db.paginate), serving the same
JSON from the same tables, so `make bench` can compare the app against it."""

import os
from datetime import UTC, datetime

from flask import Flask, abort, jsonify, request
from flask_sqlalchemy import SQLAlchemy
from marshmallow import Schema, fields
from sqlalchemy import ForeignKey
from sqlalchemy.orm import Mapped, joinedload, mapped_column, relationship

app = Flask(__name__)
app.config["SQLALCHEMY_DATABASE_URI"] = os.environ.get("PEER_DATABASE_URL", "postgresql+psycopg2:///bench")
db = SQLAlchemy(app)


class User(db.Model):  # type: ignore[name-defined,misc]
    __tablename__ = "users"
    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str]
    full_name: Mapped[str]
    is_active: Mapped[bool]
    version: Mapped[int]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    deleted_at: Mapped[datetime | None]


class Post(db.Model):  # type: ignore[name-defined,misc]
    __tablename__ = "posts"
    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str]
    content: Mapped[str]
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    author: Mapped[User] = relationship()
    version: Mapped[int]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    deleted_at: Mapped[datetime | None]


class Utc(fields.DateTime):
    def _serialize(self, value, attr, obj, **kwargs):  # type: ignore[no-untyped-def]
        return value.astimezone(UTC).isoformat(timespec="microseconds")


class UserSchema(Schema):
    id, full_name, is_active = fields.Integer(), fields.String(), fields.Boolean()
    version, created_at, updated_at = fields.Integer(), Utc(), Utc()


class PostSchema(Schema):
    id, title, content, user_id = fields.Integer(), fields.String(), fields.String(), fields.Integer()
    author = fields.Nested(UserSchema(only=("id", "full_name")))
    version, created_at, updated_at = fields.Integer(), Utc(), Utc()


@app.get("/api/v1/users/<int:user_id>")
def get_user(user_id: int):  # type: ignore[no-untyped-def]
    user = db.session.get(User, user_id)
    if user is None or user.deleted_at is not None:
        abort(404)
    response = jsonify(UserSchema().dump(user))
    response.headers["ETag"] = f'"{user.version}"'
    return response


@app.get("/api/v1/posts")
def list_posts():  # type: ignore[no-untyped-def]
    query = (
        db.select(Post).where(Post.deleted_at.is_(None)).options(joinedload(Post.author)).order_by(Post.id)
    )
    page = db.paginate(query, per_page=int(request.args.get("per_page", 20)))
    meta = {"per_page": page.per_page, "next_cursor": None, "page": page.page, "total": page.total}
    return jsonify({"items": PostSchema(many=True).dump(page.items), "meta": meta})
