"""The peer: GET user, the posts list and a post written with a bearer token, as the
Flask-SQLAlchemy and marshmallow docs teach them (db.session.get, schema.load and dump,
jsonify, db.paginate, db.session.add and commit), serving the same JSON from the same
tables, so `make bench` can compare the app against it."""

import hashlib
import os
from datetime import UTC, datetime

from flask import Flask, Response, abort, jsonify, request
from flask_sqlalchemy import SQLAlchemy
from marshmallow import Schema, ValidationError, fields, validate
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
    token_generation: Mapped[int]
    version: Mapped[int]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    deleted_at: Mapped[datetime | None]


def utcnow() -> datetime:
    return datetime.now(UTC)


class Post(db.Model):  # type: ignore[name-defined,misc]
    __tablename__ = "posts"
    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str]
    content: Mapped[str]
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    author: Mapped[User] = relationship()
    version: Mapped[int] = mapped_column(default=1)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    deleted_at: Mapped[datetime | None]


class AccessToken(db.Model):  # type: ignore[name-defined,misc]
    """The app's tokens table: the sha256 hex of each token, never the token itself."""

    __tablename__ = "access_tokens"
    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    user: Mapped[User] = relationship()
    token_hash: Mapped[str]
    generation: Mapped[int]
    expires_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]


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


class PostCreateSchema(Schema):
    title = fields.String(required=True, validate=validate.Length(min=1, max=200))
    content = fields.String(load_default="")


def problem(status: int, title: str, detail: str, **extra: object) -> Response:
    response = jsonify({"type": "about:blank", "title": title, "status": status, "detail": detail, **extra})
    response.status_code, response.mimetype = status, "application/problem+json"
    return response


def token_user(header: str) -> User | None:
    """The user of a live bearer token, checked the way the app checks it (tokens/repository.py)."""
    if not header.lower().startswith("bearer "):
        return None
    token_hash = hashlib.sha256(header[7:].strip().encode()).hexdigest()
    token = db.session.scalar(db.select(AccessToken).filter_by(token_hash=token_hash))
    if token is None or token.revoked_at is not None or token.expires_at <= datetime.now(UTC):
        return None
    user: User = token.user
    if user.deleted_at is not None or not user.is_active or token.generation != user.token_generation:
        return None
    return user


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


@app.post("/api/v1/posts")
def create_post():  # type: ignore[no-untyped-def]
    user = token_user(request.headers.get("Authorization", ""))
    if user is None:
        response = problem(401, "Unauthorized", "The bearer token is invalid, expired or revoked.")
        response.headers["WWW-Authenticate"] = 'Bearer realm="api", error="invalid_token"'
        return response
    try:
        data = PostCreateSchema().load(request.get_json())
    except ValidationError as error:
        return problem(422, "Unprocessable Content", "The request body is not valid.", errors=error.messages)
    post = Post(author=user, title=data["title"], content=data["content"])
    db.session.add(post)
    db.session.commit()
    response = jsonify(PostSchema().dump(post))
    response.status_code = 201
    response.headers["ETag"] = f'"{post.version}"'
    response.headers["Location"] = f"/api/v1/posts/{post.id}"
    return response
