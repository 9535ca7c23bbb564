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

import click
import pytest
import requests

from segport.cli._sandbox import KINDS_HELP, _set_faults
from segport.sandboxing import (
    FAULT_KINDS,
    FaultEvent,
    FaultSettingError,
    Gate,
    HttpError,
    Request,
    Response,
    Router,
    SandboxServer,
    parse_kinds,
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
    no_key = requests.post(base + "rotate")  # the Echo sandbox has no API key of its own to rotate
    assert no_key.status_code == 400 and no_key.json()["field"] == "rotate"
    assert requests.post(base + "refuse", json={"email": " Ada@Example.COM"}).status_code == 204
    assert sb.refused == {"ada@example.com"} and sb.member_fault("ada@example.com")
    refused = requests.post(base + "refuse", json={"email": 7})
    assert refused.status_code == 400 and refused.json()["field"] == "email"
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
    before = signal.getsignal(signal.SIGINT)  # default, or ignored when pytest runs as a background job
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
    assert signal.getsignal(signal.SIGINT) is before  # the handler serve_main replaced is back


# -- fault kinds beyond status codes -------------------------------------------------------------------


def faulty(kind: str, **settings: Any) -> Echo:
    """A started Echo sandbox failing every API call with ``kind``."""
    sandbox = Echo(seed=2)
    sandbox.set_faults(fail_rate=1.0, kinds=[kind], **settings)
    sandbox.start()
    return sandbox


def raw_post(sb: Echo, timeout: float = 5.0) -> socket.socket:
    """A socket that has sent one complete ``POST /api/items`` (the caller closes it)."""
    host, port = sb.base_url.removeprefix("http://").split(":")
    conn = socket.create_connection((host, int(port)), timeout=timeout)
    conn.sendall(b"POST /api/items HTTP/1.1\r\nHost: x\r\nAuthorization: Key secret\r\nContent-Length: 2\r\n\r\n{}")
    return conn


def read_all(conn: socket.socket) -> bytes:
    data = b""
    while chunk := conn.recv(65536):
        data += chunk
    return data


@pytest.mark.parametrize("kind", ["reset", "reset-applied"])
def test_a_reset_closes_the_socket_with_a_tcp_reset_and_no_answer(kind: str) -> None:
    with faulty(kind) as sb:
        conn = raw_post(sb)
        with conn, pytest.raises(ConnectionResetError):
            conn.recv(1024)  # RST, not an orderly close and not a byte of an answer
        with pytest.raises(requests.ConnectionError):
            requests.post(sb.base_url + "/api/items", json={}, headers=AUTH)
        assert sb.wait_idle(5)
        assert len(sb.items) == (0 if kind == "reset" else 2)  # reset-applied: the platform did the work
        assert sb.fault_counts() == {kind: 2}
        assert sb.fault_log[0] == FaultEvent(kind, "POST", "/api/items", False)
        sb.set_faults(fail_rate=0.0)
        assert requests.get(sb.base_url + "/api/items", headers=AUTH).status_code == 200  # the server lives on


def test_a_cut_answer_is_applied_and_ends_mid_body() -> None:
    with faulty("cut") as sb:
        with raw_post(sb) as conn:
            head, _, body = read_all(conn).partition(b"\r\n\r\n")  # then EOF
        length = int(next(line.split(b":")[1] for line in head.split(b"\r\n") if line.startswith(b"Content-Length")))
        assert head.startswith(b"HTTP/1.1 201") and 0 < len(body) < length
        with pytest.raises(requests.exceptions.ChunkedEncodingError):  # not a requests.ConnectionError!
            requests.post(sb.base_url + "/api/items", json={}, headers=AUTH)
        assert len(sb.items) == 2


def test_a_timeout_outlasts_the_client_timeout_then_applies() -> None:
    with faulty("timeout", hold_s=0.6) as sb:
        started = time.monotonic()
        with pytest.raises(requests.ReadTimeout):
            requests.post(sb.base_url + "/api/items", json={}, headers=AUTH, timeout=(5, 0.2))
        assert 0.2 <= time.monotonic() - started < 0.6
        assert sb.items == [] and sb._total_in_flight == 1  # still held, still counted as a connection
        assert sb.wait_idle(5) and time.monotonic() - started >= 0.6
        assert sb.items == [{}] and sb.fault_counts() == {"timeout": 1}


def test_a_slow_call_is_answered_normally_after_the_delay() -> None:
    with faulty("slow", slow_ms=250) as sb:
        started = time.monotonic()
        resp = requests.post(sb.base_url + "/api/items", json={}, headers=AUTH)
        assert resp.status_code == 201 and time.monotonic() - started >= 0.25 and len(sb.items) == 1


def test_429_with_and_without_retry_after() -> None:
    with faulty("429-retry-after", retry_after_s=3) as sb:
        resp = requests.get(sb.base_url + "/api/items", headers=AUTH)
        assert (resp.status_code, resp.headers["Retry-After"], resp.json()) == (
            429,
            "3",
            {"fault": 429, "over_limit": False},
        )
    with faulty("429") as sb:
        resp = requests.get(sb.base_url + "/api/items", headers=AUTH)
        assert resp.status_code == 429 and "Retry-After" not in resp.headers


GET_ITEMS = Request("GET", "/api/items", {}, b"", {})


def test_weighted_kinds_are_seeded_and_counted() -> None:
    def draw() -> tuple[list[str | None], dict[str, int]]:
        sandbox = Echo(seed=9)
        sandbox.set_faults(fail_rate=0.5, kinds={"500": 3, "slow": 1, "503": 0})
        kinds = [sandbox.roll_fault(GET_ITEMS) for _ in range(400)]
        for kind in filter(None, kinds):
            sandbox.log_fault(kind, GET_ITEMS)
        return kinds, sandbox.fault_counts()

    kinds, counts = draw()
    assert draw() == (kinds, counts) and set(counts) == {"500", "slow"}
    assert 150 <= sum(counts.values()) <= 250 and counts["500"] > 2 * counts["slow"]
    sandbox = Echo(seed=9)
    sandbox.set_faults(fail_rate=1.0, kinds={"reset": 1, "timeout": 1})
    assert sandbox.roll_fault(GET_ITEMS, operation=True) is None  # operations in a batch job draw status kinds only
    sandbox.set_faults(kinds={"reset": 1, "429-retry-after": 1})
    assert sandbox.roll_fault(GET_ITEMS, operation=True) == "429-retry-after"


def test_bad_fault_settings_are_refused_by_name() -> None:
    sb = Echo()
    for settings, name in (
        ({"kinds": ["boom"]}, "kinds"),
        ({"kinds": {"500": -1}}, "kinds.500"),
        ({"kinds": {"500": 0}}, "kinds"),
        ({"fail_rate": 1.5}, "fail_rate"),
        ({"member_fail_rate": True}, "member_fail_rate"),
        ({"hold_s": "2"}, "hold_s"),
    ):
        with pytest.raises(FaultSettingError) as caught:
            sb.set_faults(**settings)
        assert caught.value.name == name
    assert sb.fault_settings() == Echo().fault_settings()  # nothing changed
    assert parse_kinds(" 503, reset=2 ,timeout=0.5,") == {"503": 1.0, "reset": 2.0, "timeout": 0.5}
    with pytest.raises(FaultSettingError, match="not a number"):
        parse_kinds("reset=lots")


def test_kept_settings_survive_reset_others_do_not() -> None:
    sb = Echo(seed=1)
    sb.set_faults(kinds=["slow"], hold_s=0.5, keep=True)
    sb.set_faults(kinds=["reset"], fail_rate=0.3, member_fail_rate=0.1)
    sb.fault_log.append(FaultEvent("reset", "GET", "/api/items"))
    sb.reset()
    assert (sb.kinds, sb.hold_s, sb.fail_rate, sb.member_fail_rate, sb.fault_log) == ({"slow": 1.0}, 0.5, 0.0, 0.0, [])


def test_member_faults_pick_the_same_addresses_every_time() -> None:
    sb, again = Echo(seed=4), Echo(seed=4)
    for sandbox in (sb, again):
        sandbox.set_faults(member_fail_rate=0.05)
    emails = [f"p{i}@example.com" for i in range(4000)]
    picked = {e for e in emails if sb.member_fault(e)}
    assert picked == {e for e in emails if again.member_fault(e.upper())}  # the address, not its casing
    assert 120 <= len(picked) <= 280
    other = Echo(seed=5)
    other.set_faults(member_fail_rate=0.05)
    assert picked != {e for e in emails if other.member_fault(e)}  # another seed, other addresses
    refuse = sb.member_faults(Request("POST", "/api/items", {}, b"", {}))
    assert [refuse(e) for e in emails[:200]] == [e in picked for e in emails[:200]]
    assert sb.fault_counts() == {"member": len(picked & set(emails[:200]))}
    sb.set_faults(member_fail_rate=0.0)
    assert not any(sb.member_fault(e) for e in picked)


def test_fault_control_api_sets_and_reports_everything(sb: Echo) -> None:
    base = sb.base_url + "/_sandbox/faults"
    answer = requests.post(base, json={"fail_rate": 1.0, "kinds": {"503": 2, "slow": 1}, "slow_ms": 10, "keep": True})
    assert answer.json() == {"fail_rate": 1.0, "latency_ms": 0, "status_codes": [503]}
    for _ in range(6):
        requests.get(sb.base_url + "/api/items", headers=AUTH)
    report = requests.get(base).json()
    assert report["settings"]["kinds"] == {"503": 2.0, "slow": 1.0} and report["settings"]["slow_ms"] == 10
    assert sum(report["counts"].values()) == 6 and all(e[:3] == [e[0], "GET", "/api/items"] for e in report["log"])
    refused = requests.post(base, json={"kinds": ["teapot"]})
    assert refused.status_code == 400 and refused.json()["field"] == "kinds"
    assert requests.post(base, json={"hold_s": -1}).json()["field"] == "hold_s"


def test_the_fault_filter_spares_other_calls(sb: Echo) -> None:
    sb.set_faults(fail_rate=1.0, kinds=["503"], member_fail_rate=1.0, fault_filter="^POST /api/")
    assert requests.get(sb.base_url + "/api/items", headers=AUTH).status_code == 200
    assert requests.post(sb.base_url + "/api/items", json={}, headers=AUTH).status_code == 503
    assert not sb.member_faults(GET_ITEMS)("a@example.com")
    assert sb.member_faults(Request("POST", "/api/items", {}, b"", {}))("a@example.com")
    assert sb.fault_counts() == {"503": 1, "member": 1}
    assert sb.roll_fault(Request("POST", "/api/items", {}, b"", {}), operation=True) is None  # "op POST ..."
    sb.set_faults(fault_filter="^op POST ")
    assert sb.roll_fault(Request("POST", "/api/items", {}, b"", {}), operation=True) == "503"
    assert sb.roll_fault(Request("POST", "/api/items", {}, b"", {})) is None
    with pytest.raises(FaultSettingError, match="fault_filter"):
        sb.set_faults(fault_filter="(")
    sb.set_faults(fault_filter="")
    assert requests.get(sb.base_url + "/api/items", headers=AUTH).status_code == 503


def test_fail_next_forces_that_many_faults_then_the_rate_decides(sb: Echo) -> None:
    sb.set_faults(fail_next=2, kinds=["500"], fault_filter="^POST ")
    codes = [requests.post(sb.base_url + "/api/items", json={}, headers=AUTH).status_code for _ in range(3)]
    assert requests.get(sb.base_url + "/api/items", headers=AUTH).status_code == 200  # not targeted, not counted
    assert codes == [500, 500, 201] and sb.fail_next == 0 and len(sb.items) == 1


def test_over_limit_refusals_are_logged(sb: Echo) -> None:
    sb.max_connections = 0
    assert requests.get(sb.base_url + "/api/items", headers=AUTH).status_code == 429
    assert sb.fault_log == [FaultEvent("over-limit", "GET", "/api/items")]


def test_fault_flags_of_serve_main_and_the_cli() -> None:
    with pytest.raises(SystemExit):
        serve_main(Echo, lambda sb: [], ["--fault-kinds", "teapot"], "echo")
    sandbox = Echo()
    _set_faults(sandbox, "503,reset=2", {"hold_s": 0.5, "member_fail_rate": None})
    sandbox.reset()  # kept
    assert (sandbox.kinds, sandbox.hold_s) == ({"503": 1.0, "reset": 2.0}, 0.5)
    with pytest.raises(click.UsageError, match="--fault-kinds"):
        _set_faults(sandbox, "teapot", {})
    with pytest.raises(click.UsageError, match="--fault-filter"):
        _set_faults(sandbox, None, {"fault_filter": "("})
    assert all(kind in KINDS_HELP for kind in FAULT_KINDS)


def test_the_kit_keeps_its_former_import_path() -> None:
    """Code written against ``segport.testing.sandbox`` (the kit's former home) gets the same objects."""
    from segport import sandboxing
    from segport.testing import double, sandbox

    former = set(
        "FAULT_KINDS JSON_TYPE RETRY_AFTER FaultEvent FaultSettingError Gate HttpError Request Response Router "
        "SandboxServer WatchedWrites parse_kinds redirect serve_main".split()
    )
    assert set(sandbox.__all__) == former
    for name in former:
        assert getattr(sandbox, name) is getattr(sandboxing, name), name
    assert (double.PlatformDouble, double.PlatformMember) == (sandboxing.PlatformDouble, sandboxing.PlatformMember)


# -- `segport sandbox NAME`: set up from the command line, described in one JSON line ---------------------


def _serve(*args: str) -> tuple[Any, dict[str, Any]]:
    """Start ``segport sandbox ARGS --json``; return the process and its one JSON line."""
    import json
    import subprocess

    proc = subprocess.Popen(
        [sys.executable, "-m", "segport", "sandbox", *args, "--json", "--seed", "1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line, proc.stderr.read() if proc.stderr else ""
    return proc, json.loads(line)


def _stop(proc: Any) -> str:
    """SIGTERM the sandbox; return what it printed after its JSON line (nothing, with ``--json``)."""
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0
    return str(out)


def test_the_mailchimp_sandbox_is_set_up_by_flags() -> None:
    key = "0123456789abcdef0123456789abcdef-us1"
    proc, info = _serve(
        "mailchimp", "--api-key", key, "--max-connections", "2", "--compliance", "Flagged@Segport-Test.net"
    )
    try:
        assert set(info) == {"base_url", "api_key", "list_id", "client_id"}
        assert info["api_key"] == key and info["client_id"] is None and info["base_url"].endswith("/3.0")
        members = f"{info['base_url']}/lists/{info['list_id']}/members/flagged@segport-test.net"
        body = {"email_address": "flagged@segport-test.net", "status_if_new": "subscribed"}
        refused = requests.put(members, json=body, auth=("u", key))
        assert (refused.status_code, refused.json()["title"]) == (400, "Member In Compliance State")
        root = info["base_url"].rsplit("/", 1)[0]
        assert requests.post(root + "/_sandbox/faults", json={"latency_ms": 800}).status_code == 200
        start, codes = threading.Barrier(4), []

        def call() -> None:
            start.wait()
            codes.append(requests.get(info["base_url"] + "/ping", auth=("u", key)).status_code)

        threads = [threading.Thread(target=call) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(codes) == [200, 200, 429, 429]
    finally:
        assert _stop(proc) == ""


def test_the_campaignmonitor_sandbox_is_set_up_by_flags() -> None:
    proc, info = _serve("campaignmonitor", "--api-key", "k" * 32, "--suppressed", "gone@segport-test.net")
    try:
        assert info["api_key"] == "k" * 32 and info["base_url"].endswith("/api/v3.3")
        assert info["client_id"] and info["list_id"]
        state = requests.get(info["base_url"].rsplit("/", 2)[0] + "/_sandbox/state").json()
        assert "gone@segport-test.net" in json_text(state)
        clients = requests.get(info["base_url"] + "/clients.json", auth=("k" * 32, "x"))
        assert clients.status_code == 200 and clients.json()[0]["ClientID"] == info["client_id"]
    finally:
        assert _stop(proc) == ""


def json_text(value: Any) -> str:
    import json

    return json.dumps(value).lower()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("campaignmonitor", "--compliance", "a@segport-test.net"), "--compliance: the campaignmonitor sandbox"),
        (("mailchimp", "--suppressed", "a@segport-test.net"), "--suppressed: the mailchimp sandbox"),
        (("mailchimp", "--compliance", "not-an-address"), "is not an email address"),
        (("mailchimp", "--max-connections", "0"), "--max-connections"),
    ],
)
def test_a_setting_a_sandbox_lacks_is_a_usage_error(args: tuple[str, ...], message: str) -> None:
    import subprocess

    done = subprocess.run(
        [sys.executable, "-m", "segport", "sandbox", *args], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2 and message in done.stderr and "Traceback" not in done.stderr, done.stderr


def test_open_sandbox_refuses_an_option_its_factory_lacks() -> None:
    from segport.errors import PluginError
    from segport.sandboxing import open_sandbox
    from segport.sandboxing.registry import sandbox_accepts

    assert sandbox_accepts(Echo, "key") and not sandbox_accepts(Echo, "max_connections")
    with pytest.raises(PluginError, match="takes no nothing_like_this"):
        open_sandbox("mailchimp", nothing_like_this=1)
    cm = open_sandbox("campaignmonitor", max_connections=3, api_key="k")
    assert isinstance(cm, SandboxServer) and cm.max_connections == 3
    cm.start()
    try:
        assert cm.describe()["api_key"] == "k" and cm.describe()["client_id"]
    finally:
        cm.stop()


def test_the_documented_test_api_is_served() -> None:
    """Every ``/_sandbox/`` route the built-in sandboxes serve is in docs/sandboxes.md, and the other way round."""
    import re
    from pathlib import Path

    from segport.sandboxing.control import CONTROL
    from segport_campaignmonitor.sandbox.server import router as cm_router
    from segport_mailchimp.sandbox.server import router as mc_router

    doc = (Path(__file__).resolve().parents[2] / "docs" / "sandboxes.md").read_text(encoding="utf-8")
    documented = set(re.findall(r"`(GET|POST) (/_sandbox/[a-z-]+)`", doc))
    served = set()
    for routes in (CONTROL.routes, mc_router.routes, cm_router.routes):
        for method, pattern, _ in routes:
            if pattern.pattern.startswith(("/_sandbox/", r"/_sandbox/")):
                for name in re.findall(r"[a-z-]+", pattern.pattern.removeprefix("/_sandbox/")):
                    if name not in ("P", "action"):
                        served.add((method, "/_sandbox/" + name))
    assert served == documented
