"""The admin API as a person uses it by hand with an HTTP client: log in as the first admin (its
password from `LLM_PROXY_DEFAULT_ADMIN_PASSWORD`), make a user and a key over HTTP with the session
cookie and CSRF token, use that key at once with the official `openai` SDK, log out. Every secret
made here (the password, the key, the session cookie) is registered with the stack, whose
session-end check proves none of them reached the gateway's debug-level output.
"""

from __future__ import annotations

import httpx
import openai

from conftest import ADMIN_PASSWORD, Stack


def test_a_person_logs_in_makes_a_key_and_uses_it_at_once(stack: Stack):
    with httpx.Client(base_url=stack.gateway_url, timeout=30) as web:
        login = web.post("/api/auth/login", json={"username": "admin", "password": ADMIN_PASSWORD})
        assert login.status_code == 200, login.text
        assert "HttpOnly" in login.headers["set-cookie"] and "SameSite=Strict" in login.headers["set-cookie"]
        stack.secrets["session cookie"] = web.cookies["llm_proxy_session"]
        csrf = {"x-csrf-token": login.json()["csrf_token"]}

        refused = web.post("/api/apikeys", json={"name": "no-token"})
        assert refused.status_code == 403 and refused.json()["error"]["code"] == "csrf_required"

        password = "e2e-member-password-77"
        stack.secrets["a password set over HTTP"] = password
        made = web.post("/api/users", json={"username": "e2e-member", "password": password, "role": "member"}, headers=csrf)
        assert made.status_code == 201, made.text

        created = web.post(
            "/api/apikeys",
            json={"name": "e2e-http", "user": "e2e-member", "models": ["default"], "rpm": 100},
            headers=csrf,
        )
        assert created.status_code == 201, created.text
        key = created.json()["key"]
        stack.secrets["a key made over HTTP"] = key

        client = openai.OpenAI(base_url=stack.base_url, api_key=key, max_retries=0, timeout=30)
        reply = client.chat.completions.with_raw_response.create(
            model="default", messages=[{"role": "user", "content": "hi"}]
        )
        assert reply.parse().choices[0].message.content
        stack.expect_log(reply.headers.get("x-request-id"), status=200)

        audit = web.get("/api/audit").json()["data"]
        assert {"user.create", "key.create", "login"} <= {e["action"] for e in audit}
        assert key not in str(audit) and password not in str(audit)

        member = httpx.post(
            f"{stack.gateway_url}/api/auth/login", json={"username": "e2e-member", "password": password}
        )
        assert member.status_code == 200
        stack.secrets["the member's session cookie"] = member.cookies["llm_proxy_session"]
        mine = httpx.get(f"{stack.gateway_url}/api/apikeys", cookies=member.cookies).json()["data"]
        assert [k["name"] for k in mine] == ["e2e-http"], "a member sees its own keys only"

        assert web.post("/api/auth/logout", headers=csrf).status_code == 204
        assert web.get("/api/auth/me").status_code == 401
