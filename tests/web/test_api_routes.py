"""The API's answers: the OpenAPI document, pages, problem documents, names typed by users, and secrets."""

from __future__ import annotations

import logging
from urllib.parse import quote

import pytest

from .api_world import MEMORY_CONFIG, OPTIONS, World, world_fixture  # noqa: F401 - the module's fixture
from .test_api_matrix import CASES, api_routes

XSS = ['<script>alert("x")</script>', '"><img src=x onerror=alert(1)>', "Café / EU"]


def test_the_openapi_document_lists_every_route_with_its_methods(world: World) -> None:
    document = world.call(None, "GET", "/api/v1/openapi.json").json()
    described = {(method.upper(), path) for path, item in document["paths"].items() for method in item}
    assert set(api_routes()) <= described
    runs = document["paths"]["/api/v1/exports/{name}/runs"]["post"]
    assert "202" in runs["responses"] and runs["summary"]
    assert "text/csv" in document["paths"]["/api/v1/profiles"]["post"]["requestBody"]["content"]
    assert runs["responses"]["202"]["content"]["application/json"]["schema"]["$ref"].endswith("/RunStarted")
    for item in document["paths"].values():  # every route says what its failures look like
        for operation in item.values():
            assert operation["responses"]["401"]["content"]["application/json"]["schema"]["$ref"].endswith("/Problem")
    record = document["components"]["schemas"]["RunRecord"]["required"]
    assert {"id", "status", "counts", "started_at", "finished_at"} <= set(record)
    listed = document["paths"]["/api/v1/runs"]["get"]["parameters"]
    assert {"limit", "offset", "export", "status", "trigger"} <= {p["name"] for p in listed}


def test_lists_are_paged(world: World) -> None:
    everything = world.call("ada", "GET", "/api/v1/exports?limit=500").json()
    assert everything["total"] == len(everything["items"]) > 4
    page = world.call("ada", "GET", "/api/v1/exports?limit=2&offset=1").json()
    assert page["limit"] == 2 and page["offset"] == 1 and page["total"] == everything["total"]
    assert [e["name"] for e in page["items"]] == [e["name"] for e in everything["items"][1:3]]
    assert "last_run" in page["items"][0]
    assert world.call("ada", "GET", "/api/v1/runs").json()["limit"] == 50  # the default
    tokens = world.call("carl", "GET", "/api/v1/tokens?limit=1").json()
    assert len(tokens["items"]) == 1 and tokens["total"] >= 1
    for bad in ("limit=0", "limit=501", "offset=-1", "limit=ten"):
        answer = world.call("ada", "GET", f"/api/v1/exports?{bad}")
        assert answer.status_code == 400, bad
        assert answer.json()["code"] == "USAGE" and answer.headers["content-type"] == "application/problem+json"


def test_a_bad_body_is_a_400_usage_problem(world: World) -> None:
    missing = world.call("ada", "POST", "/api/v1/exports", json={"name": "half"})
    assert missing.status_code == 400 and missing.json()["code"] == "USAGE" and missing.json()["exit_status"] == 2
    assert "connection" in missing.json()["detail"]
    unknown = world.call("ada", "PATCH", "/api/v1/exports/e-team", json={"enabeld": False})
    assert unknown.status_code == 400 and "enabeld" in unknown.json()["detail"]
    garbage = world.call(
        "ada", "POST", "/api/v1/segments", content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert garbage.status_code == 400 and garbage.json()["code"] == "USAGE"
    both = world.call("ada", "DELETE", "/api/v1/profiles", json={"keys": ["p1"], "where": "id = 'p1'"})
    assert both.status_code == 400
    nothing = world.call("ada", "PATCH", "/api/v1/connections/team", json={})
    assert nothing.status_code == 422 and nothing.json()["code"] == "CONFIG_ERROR"


def test_an_unknown_name_is_a_404_with_the_close_names(world: World) -> None:
    answer = world.call("carl", "GET", "/api/v1/exports/e-taem")
    assert answer.status_code == 404
    problem = answer.json()
    assert problem["code"] == "NOT_FOUND" and problem["exit_status"] == 5 and problem["suggestions"] == ["e-team"]
    assert "did you mean 'e-team'?" in problem["detail"]
    private = world.call("carl", "GET", "/api/v1/exports/e-privat")  # never suggested to a contributor
    assert private.status_code == 404 and "e-private" not in private.text
    assert world.call("ada", "GET", "/api/v1/exports/e-privat").json()["suggestions"] == ["e-private"]
    for path in ("/api/v1/runs/999999", "/api/v1/runs/0", f"/api/v1/runs/{2**64}", "/api/v1/plugins/mailchimpp"):
        assert world.call("vera", "GET", path).status_code in (404, 400), path
    assert world.call("vera", "GET", "/api/v1/runs/999999").json()["code"] == "NOT_FOUND"


@pytest.mark.parametrize("name", XSS)
def test_names_typed_by_users_come_back_as_plain_json_strings(world: World, name: str) -> None:
    made = [
        world.call(
            "ada",
            "POST",
            "/api/v1/connections",
            json={
                "name": name,
                "type": "memory",
                "config": MEMORY_CONFIG,
                "share": "contributors",
                "agree_privacy": True,
            },
        ),
        world.call("carl", "POST", "/api/v1/segments", json={"name": name, "where": "email is not empty"}),
        world.call(
            "carl",
            "POST",
            "/api/v1/exports",
            json={"name": name, "connection": name, "segments": [name], "email_field": "email", "options": OPTIONS},
        ),
    ]
    assert [answer.status_code for answer in made] == [201, 201, 201], [a.text for a in made]
    assert made[2].headers["location"] == "/api/v1/exports/" + quote(name, safe="")
    for path in ("/api/v1/connections?limit=500", "/api/v1/segments?limit=500", "/api/v1/exports?limit=500"):
        answer = world.call("carl", "GET", path)
        assert answer.headers["content-type"] == "application/json"
        assert answer.headers["x-content-type-options"] == "nosniff"
        assert name in [item["name"] for item in answer.json()["items"]]
    shown = world.call("carl", "GET", made[2].headers["location"])
    assert shown.json()["name"] == name and shown.json()["segments"] == [name]
    missing = world.call("carl", "GET", "/api/v1/exports/" + (name + "x").replace("/", "%2F")).json()
    assert missing["detail"].startswith("unknown export") and name + "x" in missing["detail"]


def test_secrets_and_tokens_never_appear_in_answers_or_the_log(world: World, caplog: pytest.LogCaptureFixture) -> None:
    rotated = "memory-secret-rotated-7731"
    new_token = world.call("vera", "POST", "/api/v1/tokens", json={"name": "sweep"})
    created = new_token.json()["token"]  # shown once, in the answer that creates it
    secrets = [MEMORY_CONFIG["api_key"], rotated, created, *world.tokens.values()]
    answers: list[str] = []
    with caplog.at_level(logging.DEBUG):
        edited = world.call("ada", "PATCH", "/api/v1/connections/pc-vera", json={"config": {"api_key": rotated}})
        assert edited.status_code == 200, edited.text
        assert edited.json()["changes"]["config.api_key"]["new"] != rotated
        answers.append(edited.text)
        for (method, _), case in CASES.items():
            if method != "GET":
                continue
            for user in ("vera", "carl", "ada"):
                path = case.path.format(user=user, run=world.run_id)
                answers.append(world.call(user, "GET", path).text)
        answers.append(world.call("ada", "GET", "/api/v1/connections/pc-vera").text)
        answers.append(world.call("ada", "GET", "/api/v1/tokens?every_user=true").text)
        answers.append(world.call("ada", "GET", "/api/v1/audit?limit=500").text)
        answers.append(world.call(None, "GET", "/api/v1/openapi.json").text)
    shown = world.call("ada", "GET", "/api/v1/connections/pc-vera").json()
    assert shown["secrets"] == ["api_key"] and shown["config"].get("api_key") in (None, "********")
    for secret in secrets:
        for text in answers:
            assert secret not in text
        assert secret not in caplog.text
    assert "GET /api/v1/connections/pc-vera" in caplog.text  # the log was captured
