"""Schemathesis hooks for Token Warden's contract run (tests/schemathesis/run.sh).

With TW_ST_USERNAME and TW_ST_PASSWORD set, every generated request carries
an admin's access token. Generated requests may end that very session
(logout-all, revoke-sessions, the user's own session deleted), so the token
is checked before each case with a cheap `GET /api/me` and the provider logs
in again when it is no longer accepted. Without them the run is anonymous.
"""

import os

import requests
import schemathesis

BASE = os.environ.get("TW_ST_BASE", "http://127.0.0.1:18080")
USERNAME = os.environ.get("TW_ST_USERNAME")
PASSWORD = os.environ.get("TW_ST_PASSWORD")


if USERNAME and PASSWORD:

    @schemathesis.auth(refresh_interval=None)
    class AdminToken:
        token = None

        def _login(self):
            response = requests.post(
                f"{BASE}/auth/login",
                json={"username": USERNAME, "password": PASSWORD, "token_delivery": "body"},
                timeout=30,
            )
            response.raise_for_status()
            return response.json()["access_token"]

        def get(self, case, ctx):
            if self.token is not None:
                me = requests.get(
                    f"{BASE}/api/me",
                    headers={"Authorization": f"Bearer {self.token}"},
                    timeout=30,
                )
                if me.status_code == 200:
                    return self.token
            self.token = self._login()
            return self.token

        def set(self, case, data, ctx):
            case.headers = case.headers or {}
            case.headers["Authorization"] = f"Bearer {data}"


@schemathesis.hook
def before_call(context, case, kwargs):
    """Drop generated non-empty `before` cursors, in every phase.

    Cursors are sealed (authenticated) by the server, so no schema can say
    which strings are valid: a string the server did not issue is refused
    with 422 `invalid_input`, the documented behaviour, covered by the
    black-box tests. A generated cursor would make every positive case of a
    list endpoint a false failure. An empty one (a schema violation) stays.
    """
    if case.query and case.query.get("before"):
        del case.query["before"]
