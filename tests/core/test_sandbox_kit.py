"""The sandbox kit on its own, with a tiny fake sandbox."""

from __future__ import annotations

import io
import os
import signal
import socket
import sys
import threading
import time
from typing import Any, Iterator, Literal

import pytest
import requests

from segport.testing.sandbox import (
    Gate,
    HttpError,
    Request,
    Response,
    Router,
    SandboxServer,
    redirect,
    serve_main,
)

router: Router[Echo] = Router()


class Echo(SandboxServer):
    """API under ``/api`` (key ``secret``), ``/slow`` latency only, anything else ungated."""

    router = router
    fault_codes = (429, 500, 503, 418)

    def __init__(self, *, latency_ms: int = 0, fail_rate: float = 0.0, seed: int | None = None, key: str = "secret"):
        super().__init__(latency_ms=latency_ms, fail_rate=fail_rate, seed=seed)
        self.key = key
        self.items: list[Any] = []

    def demo_connection(self) -> dict[str, Any]:
        return {"key": self.key}

    def demo_export_options(self) -> dict[str, Any]:
        return {}

    def summary(self) -> dict[str, Any]:
        return {"items": len(self.items)}

    def state(self) -> dict[str, Any]:
        return {"items": list(self.items), **super().state()}

    def reset(self) -> None:
        self.items.clear()
        super().reset()

    def gates(self, path: str) -> Gate:
        if path.startswith("/slow"):
            return "latency"
        return "api" if path.startswith("/api/") else "plain"

    def authenticate(self, req: Request) -> None:
        if req.headers.get("authorization") != f"Key {self.key}" or self.revoked:
            raise HttpError(401, {"error": "unauthorized"})

    def fault_response(self, status: int, *, over_limit: bool = False) -> Response:
        return Response(status, {"fault": status, "over_limit": over_limit})

    def no_route(self, req: Request, status: Literal[404, 405]) -> Response:
        return Response(status, {"route": status})


@router.route("GET", r"/api/items")
def _items(sb: Echo, req: Request) -> Response:
    return Response(200, {"items": sb.items, "pretty": req.flag("pretty")})


@router.route("POST", r"/api/items")
def _add(sb: Echo, req: Request) -> Response:
    sb.items.append(req.json())
    return Response(201, {"count": len(sb.items)})


@router.route("GET", r"/api/items/(?P<name>[^/]+)")
def _item(sb: Echo, req: Request) -> Response:
    return Response(200, {"name": req.params["name"]})


@router.route("POST", r"/api/form")
def _form(sb: Echo, req: Request) -> Response:
    return Response(200, req.form())


@router.route("GET", r"/raw")
def _raw(sb: Echo, req: Request) -> Response:
    return Response(200, raw=b"plain text", content_type="text/plain")


@router.route("GET", r"/slow")
def _slow(sb: Echo, req: Request) -> Response:
    return redirect("http://example.com/cb?x=1", {"code": "abc"})


@router.route("GET", r"/boom")
def _boom(sb: Echo, req: Request) -> Response:
    raise RuntimeError("bug")


AUTH = {"Authorization": "Key secret"}


@pytest.fixture
def sb() -> Iterator[Echo]:
    with Echo(seed=1) as sandbox:
        yield sandbox


def test_routing_params_404_405_and_allow(sb: Echo) -> None:
    assert requests.post(sb.base_url + "/api/items", json={"a": 1}, headers=AUTH).json() == {"count": 1}
    assert requests.get(sb.base_url + "/api/items", headers=AUTH, params={"pretty": "1"}).json() == {
        "items": [{"a": 1}],
        "pretty": True,
    }
    assert requests.get(sb.base_url + "/api/items/a%20b", headers=AUTH).json() == {"name": "a b"}
    missing = requests.get(sb.base_url + "/api/nothing", headers=AUTH)
    assert (missing.status_code, missing.json()) == (404, {"route": 404})
    wrong = requests.delete(sb.base_url + "/api/items", headers=AUTH)
    assert (wrong.status_code, wrong.json(), wrong.headers["Allow"]) == (405, {"route": 405}, "GET, POST")
    assert requests.put(sb.base_url + "/_sandbox/reset").headers["Allow"] == "POST"
    assert requests.post(sb.base_url + "/api/form", data={"k": "v"}, headers=AUTH).json() == {"k": "v"}


def test_raw_bodies_redirects_auth_and_sandbox_bugs(sb: Echo) -> None:
    raw = requests.get(sb.base_url + "/raw")
    assert (raw.content, raw.headers["Content-Type"]) == (b"plain text", "text/plain")
    moved = requests.get(sb.base_url + "/slow", allow_redirects=False)
    assert moved.status_code == 302 and moved.headers["Location"] == "http://example.com/cb?x=1&code=abc"
    assert requests.get(sb.base_url + "/api/items").status_code == 401
    boom = requests.get(sb.base_url + "/boom")
    assert boom.status_code == 500 and "bug" in boom.json()["error"]
    assert boom.headers["Content-Type"].startswith("application/json")


def test_malformed_json_uses_the_hook(sb: Echo) -> None:
    bad = requests.post(sb.base_url + "/api/items", data="{nope", headers=AUTH)
    assert (bad.status_code, bad.json()) == (400, {"error": "malformed JSON"})
    listed = requests.post(sb.base_url + "/api/items", json=[1], headers=AUTH)
    assert listed.json() == {"error": "expected an object, got list"}
    assert Request("POST", "/", {}, b"  ", {}).json() == {}
    with pytest.raises(HttpError):
        Request("POST", "/", {}, b"[", {}).json()


def test_latency_applies_to_api_and_latency_routes_only(sb: Echo) -> None:
    sb.set_faults(latency_ms=150)
    for path in ("/api/items", "/slow"):
        started = time.perf_counter()
        requests.get(sb.base_url + path, headers=AUTH, allow_redirects=False)
        assert time.perf_counter() - started >= 0.15
    for path in ("/raw", "/_sandbox/state"):
        started = time.perf_counter()
        requests.get(sb.base_url + path)
        assert time.perf_counter() - started < 0.15


def test_faults_are_seeded_api_only_and_leave_state_alone() -> None:
    def run() -> list[int]:
        with Echo(seed=5, fail_rate=0.5) as sandbox, requests.Session() as session:
            codes = [
                session.post(sandbox.base_url + "/api/items", json={}, headers=AUTH).status_code for _ in range(60)
            ]
            assert len(sandbox.items) == codes.count(201)
            assert all(session.get(sandbox.base_url + "/raw").status_code == 200 for _ in range(20))
            return codes

    codes = run()
    assert set(codes) == {201, 429, 500, 503} and run() == codes
    with Echo(fail_rate=1.0) as sandbox:
        sandbox.set_faults(status_codes=[418])
        resp = requests.get(sandbox.base_url + "/api/items", headers=AUTH)
        assert (resp.status_code, resp.json()) == (418, {"fault": 418, "over_limit": False})
        with pytest.raises(ValueError, match="among 418, 429, 500, 503"):
            sandbox.set_faults(status_codes=[200])


def test_in_flight_counting_and_connection_limit(sb: Echo) -> None:
    sb.set_faults(latency_ms=300)
    sb.max_connections = 3
    start = threading.Barrier(5)
    results: list[requests.Response] = []

    def call() -> None:
        start.wait()
        results.append(requests.get(sb.base_url + "/api/items", headers=AUTH))

    threads = [threading.Thread(target=call) for _ in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(r.status_code for r in results) == [200, 200, 200, 429, 429]
    assert next(r for r in results if r.status_code == 429).json()["over_limit"] is True
    assert sb.max_in_flight in (4, 5) and sb._total_in_flight == 0 and sb._in_flight == {}


def test_keep_alive_and_requests_log(sb: Echo) -> None:
    with requests.Session() as session:
        for path in ("/api/items", "/api/nothing", "/raw", "/_sandbox/state"):
            resp = session.get(sb.base_url + path, headers=AUTH)
        session.post(sb.base_url + "/_sandbox/revoke")
        verify = session.merge_environment_settings(sb.base_url, {}, None, None, None)["verify"]
        pool = session.get_adapter(sb.base_url).get_connection_with_tls_context(resp.request, verify=verify)  # type: ignore[attr-defined]
        assert pool.num_connections == 1
    assert sb.requests_log == [("GET", "/api/items"), ("GET", "/api/nothing"), ("GET", "/raw")]


def test_control_api(sb: Echo) -> None:
    base = sb.base_url + "/_sandbox/"
    requests.post(sb.base_url + "/api/items", json={"a": 1}, headers=AUTH)
    assert requests.get(base + "state").json() == {"items": [{"a": 1}], "revoked": False}
    assert requests.get(base + "summary").json() == {"items": 1}
    faults = requests.post(base + "faults", json={"fail_rate": 0.0, "latency_ms": 2, "status_codes": [503]})
    assert faults.json() == {"fail_rate": 0.0, "latency_ms": 2, "status_codes": [503]} and sb.latency_ms == 2
    bad = requests.post(base + "faults", json={"status_codes": [200]})
    assert bad.status_code == 400 and bad.json()["field"] == "status_codes"
    assert requests.post(base + "faults", data="{").status_code == 400
    assert requests.post(base + "revoke").status_code == 204 and sb.state()["revoked"] is True
    assert requests.get(sb.base_url + "/api/items", headers=AUTH).status_code == 401
    assert requests.post(base + "reset").status_code == 204
    assert (sb.latency_ms, sb.status_codes, sb.revoked, sb.items, sb.requests_log) == (
        0,
        (429, 500, 503),
        False,
        [],
        [],
    )
    assert requests.get(base + "nothing").status_code == 404


def test_start_stop_and_context_manager() -> None:
    sandbox = Echo()
    with pytest.raises(RuntimeError):
        _ = sandbox.base_url
    url = sandbox.start()
    with pytest.raises(RuntimeError):
        sandbox.start()
    with requests.Session() as session:
        assert session.get(url + "/raw").status_code == 200  # leaves a keep-alive connection open
        sandbox.stop()
        sandbox.stop()  # idempotent
        with pytest.raises(requests.ConnectionError):
            session.get(url + "/raw")
    port = int(url.rsplit(":", 1)[1])
    with socket.socket() as probe:  # the port is released
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind(("127.0.0.1", port))
    with Echo() as again:
        assert requests.get(again.base_url + "/raw").status_code == 200
    assert again._server is None


def test_serve_main_in_process_until_sigint(monkeypatch: pytest.MonkeyPatch) -> None:
    out = io.StringIO()
    monkeypatch.setattr(sys, "stdout", out)
    seen: dict[str, str] = {}
    problems: list[BaseException] = []

    def drive() -> None:
        try:
            deadline = time.monotonic() + 5
            while "key: " not in out.getvalue() and time.monotonic() < deadline:
                time.sleep(0.01)
            seen.update(line.split(": ", 1) for line in out.getvalue().splitlines())  # type: ignore[misc]
            assert requests.get(seen["base_url"] + "/api/items", headers={"Authorization": "Key k"}).ok
        except BaseException as exc:  # reported by the main thread
            problems.append(exc)
        finally:
            os.kill(os.getpid(), signal.SIGINT)

    driver = threading.Thread(target=drive)
    driver.start()
    argv = ["--port", "0", "--latency-ms", "1", "--fail-rate", "0", "--seed", "3", "--key", "k"]
    assert (
        serve_main(Echo, lambda sb: [("key", sb.key), ("latency", sb.latency_ms)], argv, "echo", options=["--key"]) == 0
    )
    driver.join()
    assert not problems, problems
    assert seen["base_url"].startswith("http://127.0.0.1:") and (seen["key"], seen["latency"]) == ("k", "1")
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
