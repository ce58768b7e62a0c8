"""Queries over users."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, NamedTuple, TypedDict, cast

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Insert,
    Integer,
    Row,
    RowMapping,
    String,
    Table,
    any_,
    bindparam,
    case,
    column,
    exists,
    func,
    insert,
    literal,
    select,
    union_all,
    update,
)
from sqlalchemy import cast as sql_cast
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from webapp.core.fields import normalize_email
from webapp.core.lists.keyset import Lister, Page, PageRequest, count_of
from webapp.core.problems import constraint_name
from webapp.core.repository import ReadRepository, Repository
from webapp.core.search import contains_text
from webapp.resources.posts.model import Post
from webapp.resources.users.model import USERS_EMAIL_UNIQUE_INDEX, User


class NewUserRow(TypedDict):
    email: str
    full_name: str
    hashed_password: str


# What a created user is answered with (UserSchema's fields): RETURNING these, as rows
# read by name, costs a fraction of building ORM objects of every column (bench/profile.py bulk).
CREATED_COLUMNS = (
    User.id,
    User.email,
    User.email_verified,
    User.pending_email,
    User.full_name,
    User.is_active,
    User.version,
    User.created_at,
    User.updated_at,
)


# One of CREATED_COLUMNS' rows, read by name (``row["email"]``).
CreatedUser = RowMapping


class InsertedUsers(NamedTuple):
    """The rows written (any order); or, if live users have some of the emails, those
    emails and no rows: then nothing was written."""

    created: list[CreatedUser]
    taken: set[str]


_INSERTED_FROM = ("email", "full_name", "hashed_password", "version", "created_at", "updated_at")


def _insert_from_arrays() -> Insert:
    """PostgreSQL: one INSERT of the rows unnested from one array per column.

    Three parameters instead of 1,000 rows of bound values: no dict of 9,000 values to
    build and interpolate, and the statement text is the same for every batch, so it is
    compiled once. Each is one string in PostgreSQL's array syntax (_array_literal)
    cast to varchar[]: psycopg2 quotes one string instead of adapting each value. Rows
    go in in the order of the arrays (WITH ORDINALITY), which the caller sorts by email,
    so that two batches sharing emails take the unique index's locks in the same order.
    """
    new = (
        func.unnest(
            sql_cast(bindparam("emails", type_=String), ARRAY(String)),
            sql_cast(bindparam("full_names", type_=String), ARRAY(String)),
            sql_cast(bindparam("hashed_passwords", type_=String), ARRAY(String)),
        )
        .table_valued("email", "full_name", "hashed_password", with_ordinality="position")
        .render_derived(name="new")
    )
    now = bindparam("now", type_=User.created_at.type)
    rows = select(new.c.email, new.c.full_name, new.c.hashed_password, literal(1), now, now).order_by(
        new.c.position
    )
    return (
        insert(cast(Table, User.__table__))  # Core, not ORM: nothing to build but rows
        .from_select(_INSERTED_FROM, rows, include_defaults=False)
        .returning(*CREATED_COLUMNS)
    )


_INSERT_FROM_ARRAYS = _insert_from_arrays()


def _array_literal(values: Sequence[str | None]) -> str:
    """The text form of a PostgreSQL array of these strings (``{"a","b \\" c",NULL}``).

    Every string double-quoted, its backslashes and double quotes escaped: nothing else
    is special inside quotes (commas, braces, spaces, the word NULL are plain text).
    None is NULL, as psycopg2 sends it in a list.
    """
    if not values:
        return "{}"
    if None not in values:
        text = "".join(cast(Sequence[str], values))
        if '"' not in text and "\\" not in text:
            # Nothing to escape, the usual case: joined at once, not quoted one by one
            # (a third of the time this function took for 1,000 rows).
            return '{"' + '","'.join(cast(Sequence[str], values)) + '"}'
    quoted = (
        "NULL" if value is None else '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
        for value in values
    )
    return "{" + ",".join(quoted) + "}"


_INSERT_ROWS = insert(User).returning(*CREATED_COLUMNS)


class UserRepository(Repository[User]):
    model = User

    def get_by_email(self, email: str) -> User | None:
        stmt = select(User).where(func.lower(User.email) == normalize_email(email), User.deleted_at.is_(None))
        return self.session.scalars(stmt).first()

    def emails_taken(self, emails: list[str]) -> set[str]:
        """Which of these (lower-case) emails belong to live users: one statement."""
        if not emails:
            return set()
        email = func.lower(User.email)
        if self.session.get_bind().dialect.name == "postgresql":
            # Not `IN (...)`: for a long list PostgreSQL answers `= ANY` through the pg_trgm
            # GIN index (it serves equality too), seconds for a full batch; a join is a hash
            # or btree plan. Against unnest() of one array parameter, not a VALUES list:
            # a thousand bound values are compiled on every call, one array is compiled once
            # and cached (bench/profile.py bulk).
            unnested = func.unnest(literal(emails, ARRAY(String)))
            wanted = unnested.table_valued(column("email", String)).render_derived(name="wanted")
            stmt = select(email).join(wanted, email == wanted.c.email).where(User.deleted_at.is_(None))
        else:
            stmt = select(email).where(email.in_(emails), User.deleted_at.is_(None))
        return set(self.session.scalars(stmt))

    def insert_new(self, rows: Sequence[NewUserRow], now: datetime) -> InsertedUsers:
        """Insert these users, in this order, unless a live user has one of the emails.

        The emails must be distinct. ``now`` is every row's created_at and updated_at:
        one statement creates them all.
        """
        if not rows:
            return InsertedUsers([], set())
        if self.session.get_bind().dialect.name != "postgresql":
            return self.insert_new_portable(rows, now)
        emails = [row["email"] for row in rows]
        parameters = {
            "emails": _array_literal(emails),
            "full_names": _array_literal([row["full_name"] for row in rows]),
            "hashed_passwords": _array_literal([row["hashed_password"] for row in rows]),
            "now": now,
        }
        # No taken check first: the unique index checks every row anyway. Inside a
        # savepoint, so that when it refuses one the transaction can still ask which
        # emails are taken. Both a SELECT first and ON CONFLICT DO NOTHING (a speculative
        # insertion per row) measured slower than the savepoint's two extra round trips.
        try:
            with self.session.begin_nested():
                created = self.session.execute(_INSERT_FROM_ARRAYS, parameters).mappings().all()
        except IntegrityError as error:
            if constraint_name(error) != USERS_EMAIL_UNIQUE_INDEX:
                raise
            taken = self.emails_taken(emails)
            if not taken:
                raise  # the user who had it is gone again: the constraint's own 409
            return InsertedUsers([], taken)
        return InsertedUsers(list(created), set())

    def insert_new_portable(self, rows: Sequence[NewUserRow], now: datetime) -> InsertedUsers:
        """``insert_new`` on any database: the taken check first, then an INSERT of bound rows
        (insertmanyvalues). PostgreSQL's form is tested equal to this one. A race with
        another writer is the unique index's IntegrityError (409 by constraint name)."""
        taken = self.emails_taken([row["email"] for row in rows])
        if taken:
            return InsertedUsers([], taken)
        values = [{**row, "version": 1, "created_at": now, "updated_at": now} for row in rows]
        return InsertedUsers(list(self.session.execute(_INSERT_ROWS, values).mappings().all()), set())

    def set_password_hash(self, user_id: int, hashed_password: str) -> None:
        """Replace a stored hash by one of the same password (not a change of the user's data:
        no version bump, tokens stay valid)."""
        stmt = update(User).where(User.id == user_id).values(hashed_password=hashed_password)
        self.session.execute(stmt.execution_options(synchronize_session=False))


# The read side selects Core columns of the tables (ReadRepository says why).
users = User.__table__.c
posts = Post.__table__.c


# The most matching posts post_title looks up first (UserReadRepository.page). Up to
# this many, their authors are fetched by id; beyond, users are checked one by one in the
# page's order. Larger makes every common-word search read more posts before it starts;
# smaller makes a word just past it walk further through users to fill a page (with this
# many matches among 500,000 users, about 20,000 index probes).
POST_TITLE_HITS = 500
# With more, the count decides between checking users one by one and letting PostgreSQL
# join the matching posts, from how many of the first POST_TITLE_SAMPLE users have a
# match (UserReadRepository.page). Larger estimates better and costs more index probes.
POST_TITLE_SAMPLE = 500
# Users are checked one by one when at least one in this many of the sample has a match:
# a walk to the cap then checks at most about this many times the cap users.
POST_TITLE_WALK_SPAN = 4


class UserReadRepository(ReadRepository):
    """Users as rows of UserSchema's fields, for GET."""

    model = User
    lister = Lister(
        {"id": users.id, "email": users.email, "full_name": users.full_name, "created_at": users.created_at}
    )
    columns = (
        users.id,
        users.email,
        users.email_verified,
        users.pending_email,
        users.full_name,
        users.is_active,
        users.version,
        users.created_at,
        users.updated_at,
    )

    def account_by_email(self, email: str) -> Row[int, str, bool, int] | None:
        """What sign-in checks of the live user with this email (its hash included)."""
        stmt = select(users.id, users.hashed_password, users.is_active, users.token_generation).where(
            func.lower(users.email) == normalize_email(email), users.deleted_at.is_(None)
        )
        return self.reader.execute(stmt).first()

    def credentials_of(self, user_id: int) -> Row[int, str, str] | None:
        """(id, email, hashed_password) of the live user: what checking a current password reads."""
        stmt = select(users.id, users.email, users.hashed_password).where(
            users.id == user_id, users.deleted_at.is_(None)
        )
        return self.reader.execute(stmt).first()

    @staticmethod
    def filters(
        *,
        is_active: bool | None = None,
        email: str | None = None,
        q: str | None = None,
        q_matches_email: bool = False,
    ) -> list[ColumnElement[bool]]:
        """The WHERE conditions of a list's filters (``post_title`` is ``page``'s own)."""
        where: list[ColumnElement[bool]] = []
        if is_active is not None:
            where.append(users.is_active.is_(is_active))
        if email is not None:
            where.append(func.lower(users.email) == normalize_email(email))
        if q:
            in_name = contains_text(users.full_name, q)
            where.append(in_name | contains_text(users.email, q) if q_matches_email else in_name)
        return where

    def page(
        self, request: PageRequest, *where: ColumnElement[bool], post_title: str | None = None
    ) -> Page[Any]:
        """``ReadRepository.page``, and with ``post_title`` only the users with a live post
        whose title contains it, each once.

        Which users those are is found in one of three ways, chosen inside the statement
        when it runs (PostgreSQL's estimate of a word's matches is no guide: for any rare
        word it expects 0.01% of the table). Up to POST_TITLE_HITS matching posts: their
        authors, looked up by id, a few index probes at any size. More: the page walks the
        users in its order, each one's posts checked, and stops after a page. The count
        walks users too when the cap is expected within POST_TITLE_WALK_SPAN times the
        cap users (a common word: it stops at the cap, however many posts match), and
        otherwise leaves the join to PostgreSQL, which reads every matching post (fewer
        matching users than that: a walk would check every user for them).
        """
        if not post_title:
            return super().page(request, *where)
        matching = (posts.deleted_at.is_(None), contains_text(posts.title, post_title))
        hits = select(posts.user_id).where(*matching).limit(POST_TITLE_HITS + 1).cte("hits")
        hit_count = select(func.count()).select_from(hits).scalar_subquery()
        live = (users.deleted_at.is_(None), *where)
        reader = self.reader
        dialect = reader.get_bind().dialect if isinstance(reader, Session) else reader.dialect
        if dialect.name == "postgresql":
            # The ids as one array: an index condition on the primary key, so the authors
            # are fetched by id and then sorted. With IN (subquery) PostgreSQL may instead
            # walk every user in the requested order, expecting the matches early.
            authors = select(func.array_agg(hits.c.user_id)).scalar_subquery()
            by_id = users.id == any_(sql_cast(authors, ARRAY(Integer)))
        else:
            by_id = users.id.in_(select(hits.c.user_id))
        few = (*live, hit_count <= POST_TITLE_HITS, by_id)
        many = (*live, hit_count > POST_TITLE_HITS)

        def checked_one_by_one(user_id: ColumnElement[int]) -> ColumnElement[bool]:
            # Whether this user has a match, probed on the user's posts and stopped at the
            # first (OFFSET 0 keeps PostgreSQL from turning the check into a join over
            # every matching post, which a prolific author makes long).
            return select(posts.id).where(posts.user_id == user_id, *matching).offset(0).exists()

        # EXISTS, not a JOIN: a user with many matching posts is listed once.
        has_match = exists().where(posts.user_id == users.id, *matching)
        branches = [
            select(*self.columns).where(*few),
            select(*self.columns).where(*many, checked_one_by_one(users.id)),
        ]
        walk = _walk_reaches_the_cap(live, checked_one_by_one)
        count = count_of(
            union_all(
                select(users.id).where(*few),
                select(users.id).where(*many, walk, checked_one_by_one(users.id)),
                select(users.id).where(*many, ~walk, has_match),
            )
        )
        return self.lister.fetch_either(self.reader, branches, count, request).map(self.view)


def _walk_reaches_the_cap(
    live: Sequence[ColumnElement[bool]], has_match: Callable[[ColumnElement[int]], ColumnElement[bool]]
) -> ColumnElement[bool]:
    """Whether checking the users matching ``live`` one by one (in whatever order the
    count reads them) is expected to find the count's cap of matching users (the bound
    ``count_limit``) within POST_TITLE_WALK_SPAN times that many users: then a count that
    stops at the cap is the cheapest, whatever the number of matching posts. Otherwise the
    walk would check every user (a small table, or few users with a match), and the join
    of the matching posts reads fewer rows.

    Judged from how many of the first POST_TITLE_SAMPLE users by id have a match (the
    sample only steers the cost: either way the count is exact), and, only when that
    share is large enough, from how many users there are, counted up to the span.
    """
    sampled = select(users.id).where(*live).order_by(users.id).limit(POST_TITLE_SAMPLE).subquery("sampled")
    sample = (
        select(func.count().label("users"), func.count().filter(has_match(sampled.c.id)).label("matching"))
        .select_from(sampled)
        .subquery("sample")
    )
    # 64-bit: PostgreSQL types the bound cap as a 32-bit integer when it fits one, and a
    # cap near that limit would overflow it when multiplied.
    span = sql_cast(bindparam("count_limit"), BigInteger) * POST_TITLE_WALK_SPAN
    population = (
        select(func.count())
        .select_from(select(users.id).where(*live).limit(span).subquery())
        .scalar_subquery()
    )
    dense = sample.c.matching * POST_TITLE_WALK_SPAN >= sample.c.users
    # CASE, not AND: PostgreSQL promises no order for AND's operands, and CASE is its
    # documented way to have the users counted only for a dense sample.
    enough = population * sample.c.matching >= bindparam("count_limit") * sample.c.users
    reaches = case((dense, enough), else_=False)
    # A CTE: the statement asks twice (walk, or not), and the sample is probed once.
    return select(select(reaches.label("walk")).cte("walk").c.walk).scalar_subquery()
