"""Response headers every answer carries (browser hardening) and CORS for allowed origins."""

from __future__ import annotations

import logging

from flask import Flask, Response, request
from flask_cors import CORS

log = logging.getLogger(__name__)

# A JSON API has nothing to render, frame or load: a page that somehow shows one of its
# answers gets no scripts, no styles and no framing. Pages the app does serve (/docs) set
# their own policy before this one is applied.
API_CONTENT_SECURITY_POLICY = (
    "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)

HARDENING_HEADERS = {
    # Without it a browser may sniff a JSON body that looks like HTML and run it.
    "X-Content-Type-Options": "nosniff",
    # URLs carry ids, filters and cursors: they stay with the page that holds them.
    "Referrer-Policy": "no-referrer",
    # Older browsers ignore CSP frame-ancestors.
    "X-Frame-Options": "DENY",
}

# What a browser script may read and send across origins (CORS hides everything else).
CORS_EXPOSED_HEADERS = ("ETag", "Location", "Link", "Retry-After", "Idempotent-Replayed", "X-Request-ID")
CORS_ALLOWED_HEADERS = (
    "Authorization",
    "Content-Type",
    "If-Match",
    "If-None-Match",
    "Idempotency-Key",
    "X-Request-ID",
)
CORS_METHODS = ("GET", "HEAD", "POST", "PATCH", "DELETE", "OPTIONS")


def register_response_headers(app: Flask) -> None:
    """Hardening headers on every answer; CORS only for the origins in CORS_ORIGINS."""

    def harden(response: Response) -> Response:
        for name, value in HARDENING_HEADERS.items():
            response.headers[name] = value
        response.headers.setdefault("Content-Security-Policy", API_CONTENT_SECURITY_POLICY)
        if "Authorization" in request.headers:
            # An answer to an authenticated request is that caller's: no shared or
            # browser cache may keep it for the next person at the same machine or proxy.
            response.headers["Cache-Control"] = "no-store"
        # The WSGI server names itself (gunicorn without a version); the app never adds
        # a Server header that would tell a scanner which library versions to try.
        response.headers.pop("Server", None)
        return response

    app.after_request(harden)

    origins = list(app.config.get("CORS_ORIGINS") or ())
    if origins:
        CORS(
            app,
            origins=origins,
            methods=list(CORS_METHODS),
            allow_headers=list(CORS_ALLOWED_HEADERS),
            expose_headers=list(CORS_EXPOSED_HEADERS),
            # Bearer tokens travel in a header: no cookies, so no credentialed requests.
            supports_credentials=False,
            max_age=600,
        )
        log.info("CORS enabled for %s", ", ".join(origins))
