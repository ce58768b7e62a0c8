"""Repositories: the only modules that build SQL."""

from webapp.repositories.base import Repository
from webapp.repositories.idempotency import IdempotencyRepository
from webapp.repositories.listing import Lister, Page, PageRequest, SortKey, parse_sort
from webapp.repositories.posts import PostRepository
from webapp.repositories.users import UserRepository

__all__ = [
    "IdempotencyRepository",
    "Lister",
    "Page",
    "PageRequest",
    "PostRepository",
    "Repository",
    "SortKey",
    "UserRepository",
    "parse_sort",
]
