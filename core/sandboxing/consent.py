"""An OAuth2 consent page for sandboxes: the platform asks its user to allow or deny a client app.

A sandbox's authorize route answers :func:`consent_page` (a form posting back to the same route with
the request's parameters hidden) and its POST route reads :func:`consent_decision`: ``allow`` issues
a code, ``deny`` redirects with ``error=access_denied`` (RFC 6749, section 4.1.2.1). The page has no
script and no style, and may not be framed.
"""

from __future__ import annotations

from html import escape
from typing import Literal, Mapping

from .messages import Response

__all__ = ["CONSENT_HEADERS", "consent_decision", "consent_page"]

# No script, style or frame; no form-action, which would also govern the redirect after the POST.
CONSENT_HEADERS: Mapping[str, str] = {
    "Content-Security-Policy": "default-src 'none'; base-uri 'none'; frame-ancestors 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


def consent_page(*, platform: str, client_id: str, action: str, params: Mapping[str, str], scope: str = "") -> Response:
    """Return the page asking to allow app ``client_id`` into the ``platform`` account: Allow and Deny buttons.

    Both buttons post ``params`` back to ``action`` with ``decision`` set to ``allow`` or ``deny``.
    """
    client = escape(client_id)
    hidden = "\n".join(
        f'    <input type="hidden" name="{escape(name)}" value="{escape(value)}">' for name, value in params.items()
    )
    asks = f"<p>It asks for: {escape(scope)}.</p>\n" if scope else ""
    page = f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Authorize {client} | {escape(platform)}</title>
</head>
<body>
<main>
  <h1>Authorize {client}</h1>
  <p>The app <strong>{client}</strong> would like to access your {escape(platform)} account.</p>
  {asks}<form method="post" action="{escape(action)}">
{hidden}
    <button type="submit" name="decision" value="allow">Allow</button>
    <button type="submit" name="decision" value="deny">Deny</button>
  </form>
</main>
</body>
</html>
"""
    return Response(200, headers=dict(CONSENT_HEADERS), content_type="text/html; charset=utf-8", raw=page.encode())


def consent_decision(form: Mapping[str, str]) -> Literal["allow", "deny"] | None:
    """Return the button the user pressed on :func:`consent_page`, or None when the form names neither."""
    decision = form.get("decision")
    if decision == "allow":
        return "allow"
    if decision == "deny":
        return "deny"
    return None
