"""Lists for every resource: sort allowlists, offset and keyset pages, cursors, the envelope."""

from webapp.core.lists.keyset import MAX_PER_PAGE, Lister, Page, PageRequest, SortKey, parse_sort

__all__ = ["MAX_PER_PAGE", "Lister", "Page", "PageRequest", "SortKey", "parse_sort"]
