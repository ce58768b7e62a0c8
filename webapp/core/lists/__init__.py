"""Lists for every resource: sort allowlists, offset and keyset pages, cursors, the envelope."""

from webapp.core.lists.keyset import (
    DEFAULT_COUNT_CAP,
    MAX_PER_PAGE,
    Lister,
    Page,
    PageRequest,
    SortKey,
    parse_sort,
)

__all__ = ["DEFAULT_COUNT_CAP", "MAX_PER_PAGE", "Lister", "Page", "PageRequest", "SortKey", "parse_sort"]
