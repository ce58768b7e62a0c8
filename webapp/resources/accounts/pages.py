"""The pages the links in account mails open (under APP_BASE_URL when it is this server).

Opening one does nothing but show a button: mail scanners and link previews fetch every
link they see, and a GET that spent the token would verify an address, or burn a reset
link, before its owner clicked. The button POSTs the token to the API from the page's
script. A front end of your own replaces these pages: point APP_BASE_URL at it.
"""

from __future__ import annotations

from flask import Blueprint, Response

from webapp.resources.accounts.service import RESET_PASSWORD_PATH, VERIFY_EMAIL_PATH

pages = Blueprint("account_pages", __name__)

# The script is a file of its own, so the policy refuses every inline script; the page may
# talk to this origin only, and the token in its URL is never sent on as a Referer.
PAGE_CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'unsafe-inline'; connect-src 'self'; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)

_PAGE = """<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <meta name="referrer" content="no-referrer">
  <title>{title}</title>
  <script src="/account-pages/account.js" defer></script>
</head>
<body style="font-family: sans-serif; max-width: 32rem; margin: 3rem auto">
  <h1>{title}</h1>
  <form data-api="{api}" data-done="{done}">
    {fields}<button type="submit">{button}</button>
  </form>
  <p role="status"></p>
</body>
</html>
"""

_SCRIPT = """"use strict";
const token = new URLSearchParams(window.location.search).get("token") || "";
const form = document.querySelector("form");
const status = document.querySelector("[role=status]");
form.addEventListener("submit", async (event) => {
  event.preventDefault();
  const body = { token };
  const password = form.elements.namedItem("password");
  if (password) body.password = password.value;
  const response = await fetch(form.dataset.api, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body),
  });
  if (response.ok) {
    form.hidden = true;
    status.textContent = form.dataset.done;
    return;
  }
  const problem = await response.json().catch(() => ({}));
  status.textContent = problem.detail || problem.title || "The request failed (" + response.status + ").";
});
"""


def _page(title: str, api: str, done: str, button: str, fields: str = "") -> Response:
    html = _PAGE.format(title=title, api=api, done=done, button=button, fields=fields)
    response = Response(html, mimetype="text/html")
    response.headers["Content-Security-Policy"] = PAGE_CONTENT_SECURITY_POLICY
    response.headers["Cache-Control"] = "no-store"
    return response


@pages.get(VERIFY_EMAIL_PATH)
def verify_email_page() -> Response:
    return _page(
        "Verify your email",
        "/api/v1/email-verifications",
        "Your email is verified.",
        "Verify my email",
    )


@pages.get(RESET_PASSWORD_PATH)
def reset_password_page() -> Response:
    field = (
        '<p><label>New password (8 to 128 characters)<br><input name="password" type="password" '
        'minlength="8" maxlength="128" autocomplete="new-password" required></label></p>\n    '
    )
    return _page(
        "Choose a new password",
        "/api/v1/password-resets/complete",
        "Your password is changed. Sign in with it; every earlier sign-in has ended.",
        "Set the new password",
        field,
    )


@pages.get("/account-pages/account.js")
def account_script() -> Response:
    response = Response(_SCRIPT, mimetype="text/javascript")
    response.cache_control.max_age = 3600
    return response
