"""The /nbento/ REST handlers through a real Jupyter server subprocess: JSON answers, token
auth (403 without), XSRF on cookie-authenticated POSTs, 400 with a message for bad input,
and the server / call proxy / export flows on the support-tickets example."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.jupyter_ext.lab_server import (
    LabServer,
    copy_example,
    jupyter_server,
    save_support_classifier,
)


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabServer]:
    with jupyter_server(tmp_path_factory.mktemp("jupyter")) as server:
        copy_example(server.root)
        nb = json.loads((server.root / "support_tickets.ipynb").read_text())
        nb["cells"] = [c for c in nb["cells"] if "%%nbento api" not in "".join(c["source"])]
        (server.root / "no_api.ipynb").write_text(json.dumps(nb))
        yield server


@pytest.fixture(scope="module")
def model_tag(lab: LabServer) -> str:
    return save_support_classifier(lab.home)


def call(lab: LabServer, method: str, path: str, body: Any = None, *, token: bool = True,
         raw: bytes | None = None, timeout: float = 120.0) -> httpx.Response:
    headers = lab.auth() if token else {}
    content = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    return httpx.request(method, lab.url(path), headers=headers, content=content,
                         timeout=timeout, trust_env=False)


ROUTES = [
    ("GET", "nbento/models"),
    ("GET", "nbento/models/support_classifier:latest"),
    ("DELETE", "nbento/models/support_classifier:latest"),
    ("GET", "nbento/services?notebook=support_tickets.ipynb"),
    ("GET", "nbento/servers"),
    ("POST", "nbento/servers"),
    ("GET", "nbento/servers/x-1"),
    ("DELETE", "nbento/servers/x-1"),
    ("GET", "nbento/servers/x-1/apis"),
    ("POST", "nbento/servers/x-1/reload"),
    ("POST", "nbento/servers/x-1/call/classify"),
    ("POST", "nbento/exports"),
    ("GET", "nbento/jobs/abc"),
]


@pytest.fixture(scope="module")
def xsrf_only(lab: LabServer) -> Iterator[httpx.Client]:
    """A client with no token and no login, but with a valid XSRF cookie and header: its
    POSTs and DELETEs pass Jupyter's XSRF check, so a 403 can only come from the route's own
    authentication (an unknown route answers 404)."""
    client = httpx.Client(base_url=lab.base, trust_env=False, timeout=30.0)
    client.get("/login")
    xsrf = client.cookies.get("_xsrf")
    assert xsrf, "the login page sets an _xsrf cookie"
    client.headers["X-XSRFToken"] = xsrf
    yield client
    client.close()


@pytest.mark.parametrize(("method", "path"), ROUTES)
def test_every_route_refuses_requests_without_a_token(
    xsrf_only: httpx.Client, method: str, path: str
) -> None:
    response = xsrf_only.request(method, f"/{path}", json={"notebook": "support_tickets.ipynb"})
    assert response.status_code == 403, response.text
    # Jupyter's authentication answer, not its XSRF refusal ("'_xsrf' argument missing")
    assert response.json()["message"] == "Forbidden"


@pytest.mark.parametrize("method", ["GET", "POST", "DELETE"])
def test_an_unknown_route_is_a_404_for_the_same_request(xsrf_only: httpx.Client, method: str) -> None:
    """The control for the test above: the same tokenless request gets past Jupyter's own
    checks, so the 403s there come from each nbento route."""
    response = xsrf_only.request(method, "/nbento/no-such-route", json={})
    assert response.status_code == 404


def test_models_list_inspect_and_delete(lab: LabServer, model_tag: str) -> None:
    listed = call(lab, "GET", "nbento/models").json()["models"]
    mine = next(m for m in listed if m["tag"] == model_tag)
    assert mine["name"] == "support_classifier"
    assert set(mine["signatures"]) == {"predict", "predict_proba"}
    assert mine["signatures"]["predict"]["batchable"] is True
    assert mine["size_bytes"] > 0
    assert mine["provenance"] == {"notebook": "support_tickets.ipynb", "cell_id": "tickets-05"}

    one = call(lab, "GET", f"nbento/models/{model_tag}")
    assert one.status_code == 200 and one.json()["version"] == model_tag.split(":")[1]

    extra = save_support_classifier(lab.home)  # a second version, then delete it
    deleted = call(lab, "DELETE", f"nbento/models/{extra}")
    assert deleted.status_code == 200 and deleted.json() == {"deleted": extra}
    gone = call(lab, "GET", f"nbento/models/{extra}")
    assert gone.status_code == 404
    assert extra.split(":")[1] in gone.json()["message"]
    assert model_tag in [m["tag"] for m in call(lab, "GET", "nbento/models").json()["models"]]


def test_services_reports_cells_by_kind_source_and_warnings(lab: LabServer) -> None:
    answer = call(lab, "GET", "nbento/services?notebook=support_tickets.ipynb")
    assert answer.status_code == 200
    info = answer.json()
    assert info["service"] == "support_tickets"
    assert [c["cell_id"] for c in info["cells"]["preprocess"]] == ["tickets-02"]
    assert [(c["cell_id"], c["name"]) for c in info["cells"]["model"]] == [("tickets-05", "support_classifier")]
    assert [(c["cell_id"], c["name"]) for c in info["cells"]["api"]] == [("tickets-06", "classify")]
    assert "def classify(texts: Annotated[list[Ticket], Field(min_length=1, max_length=256)]) -> dict:" in info["source"]
    assert info["warnings"] == []

    # a notebook whose API reads a name only an uncaptured cell defines gets a warning
    nb = json.loads((lab.root / "support_tickets.ipynb").read_text())
    api_cell = next(c for c in nb["cells"] if c.get("id") == "tickets-06")
    api_cell["source"] = "%%nbento api classify\ndef classify(texts: list[str]) -> dict:\n    return {'n': len(rows)}\n"
    (lab.root / "free_names.ipynb").write_text(json.dumps(nb))
    warned = call(lab, "GET", "nbento/services?notebook=free_names.ipynb").json()
    assert [w["name"] for w in warned["warnings"]] == ["rows"]
    assert "cell 5" in warned["warnings"][0]["message"]


@pytest.mark.parametrize(
    ("method", "path", "body", "needle"),
    [
        ("GET", "nbento/services", None, "say which notebook"),
        ("GET", "nbento/services?notebook=../../etc/passwd.ipynb", None, "outside the Jupyter root"),
        ("GET", "nbento/services?notebook=missing.ipynb", None, "no notebook 'missing.ipynb'"),
        ("GET", "nbento/services?notebook=data/tickets.csv", None, "not a notebook"),
        ("POST", "nbento/servers", b"{not json", "not JSON"),
        ("POST", "nbento/servers", b"[1, 2]", "must be a JSON object"),
        ("POST", "nbento/servers", {"notebook": "support_tickets.ipynb", "port": "http"}, "port must be"),
        ("POST", "nbento/servers", {"notebook": "no_api.ipynb"}, "has no API cell"),
        ("POST", "nbento/servers", {}, "say which notebook"),
        ("POST", "nbento/exports", {"notebook": "support_tickets.ipynb", "replicas": 3}, "unknown export options: replicas"),
        ("POST", "nbento/exports", {"notebook": "support_tickets.ipynb", "yatai": "yes"}, "yatai must be true or false"),
        ("POST", "nbento/exports", {"notebook": "support_tickets.ipynb", "out_dir": "../../x"}, "outside the Jupyter root"),
        ("GET", "nbento/models/Bad%20Name", None, "Bad Name"),
    ],
)
def test_bad_input_is_a_400_with_a_message(
    lab: LabServer, method: str, path: str, body: Any, needle: str
) -> None:
    raw = body if isinstance(body, bytes) else None
    response = call(lab, method, path, None if raw else body, raw=raw)
    assert response.status_code == 400, response.text
    assert needle in response.json()["message"]


def test_unknown_ids_are_404s_with_a_message(lab: LabServer) -> None:
    for method, path in [("GET", "nbento/servers/nope-1"), ("DELETE", "nbento/servers/nope-1"),
                         ("POST", "nbento/servers/nope-1/call/classify"), ("GET", "nbento/jobs/abc")]:
        response = call(lab, method, path, {})
        assert response.status_code == 404, (method, path, response.text)
        assert "nope-1" in response.json()["message"] or "abc" in response.json()["message"]


def _cookie_session(lab: LabServer) -> httpx.Client:
    """A browser-like session: log in with the token on /login, then use cookies only."""
    client = httpx.Client(base_url=lab.base, trust_env=False, timeout=30.0)
    client.get("/login")
    xsrf = client.cookies.get("_xsrf")
    assert xsrf, "the login page sets an _xsrf cookie"
    login = client.post("/login", data={"password": lab.token, "_xsrf": xsrf})
    assert login.status_code in (200, 302)
    assert client.get("/nbento/models").status_code == 200  # cookie auth works for GET
    return client


def test_cookie_authenticated_posts_need_the_xsrf_token(lab: LabServer) -> None:
    client = _cookie_session(lab)
    try:
        body = {"notebook": "support_tickets.ipynb", "replicas": 3}
        refused = client.post("/nbento/exports", json=body)
        assert refused.status_code == 403
        assert "_xsrf" in refused.json()["message"]
        refused_delete = client.delete("/nbento/models/support_classifier:latest")
        assert refused_delete.status_code == 403
        accepted = client.post("/nbento/exports", json=body,
                               headers={"X-XSRFToken": client.cookies["_xsrf"]})
        assert accepted.status_code == 400  # past the XSRF check, stopped by the bad option
    finally:
        client.close()


def _poll_job(lab: LabServer, job_id: str, timeout: float = 180.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    seen: list[float] = []
    while time.monotonic() < deadline:
        job = call(lab, "GET", f"nbento/jobs/{job_id}").json()
        seen.append(job["progress"])
        if job["state"] != "running":
            job["seen_progress"] = seen
            return job
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} still running after {timeout} s")


@pytest.mark.slow
def test_server_start_call_metrics_reload_and_stop(lab: LabServer, model_tag: str) -> None:
    started = call(lab, "POST", "nbento/servers", {"notebook": "support_tickets.ipynb"})
    assert started.status_code == 201, started.text
    server = started.json()
    try:
        assert server["state"] == "running"
        assert server["url"].startswith("http://127.0.0.1:")
        assert server["docs_url"] == server["url"] + "/docs"
        assert server["service"] == "support_tickets" and server["pid"] > 0
        assert server["runners"]["support_classifier"]["tag"] == model_tag
        listed = call(lab, "GET", "nbento/servers").json()["servers"]
        assert [s["id"] for s in listed] == [server["id"]]

        apis = call(lab, "GET", f"nbento/servers/{server['id']}/apis").json()["apis"]
        classify = next(a for a in apis if a["name"] == "classify")
        assert classify["example"] == {"texts": ["text"]}  # the canonical, named body

        body = {"texts": ["I was charged twice for my subscription", "Where is my parcel?"]}
        answer = call(lab, "POST", f"nbento/servers/{server['id']}/call/classify", body).json()
        assert answer["status"] == 200 and answer["latency_ms"] > 0
        assert answer["body"]["labels"][0] == "billing" and len(answer["body"]["scores"]) == 2
        bad = call(lab, "POST", f"nbento/servers/{server['id']}/call/classify", {"texts": 3}).json()
        assert bad["status"] == 422  # the service's own validation, passed through
        assert bad["body"]["error"]["type"] == "validation_error"
        assert bad["body"]["error"]["field"] == "texts"

        time.sleep(1.2)  # chart points are intervals between scrapes at least 1 s apart
        status = call(lab, "GET", f"nbento/servers/{server['id']}").json()
        assert status["metrics"]["requests"] >= 2
        assert status["metrics"]["errors"] == 0  # readiness probes and the 422 are not 5xx API errors
        assert status["history"] and status["history"][-1]["requests"] >= 2
        assert status["history"][-1]["p50_ms"] is not None

        # a broken API cell: the reload fails, the old version keeps answering
        nb_path = lab.root / "support_tickets.ipynb"
        original = nb_path.read_text()
        nb = json.loads(original)
        api_cell = next(c for c in nb["cells"] if c.get("id") == "tickets-06")
        api_cell["source"] = "%%nbento api classify\ndef classify(texts: list[str]) -> dict:\n    return {'labels': undefined_name_here(texts)}\nraise RuntimeError('boom at import')\n"
        nb_path.write_text(json.dumps(nb))
        try:
            reload = call(lab, "POST", f"nbento/servers/{server['id']}/reload")
            assert reload.status_code == 200  # an expected outcome, answered as data
            outcome = reload.json()
            assert outcome["changed"] is True and outcome["ok"] is False
            assert "boom at import" in outcome["error"]["message"]
            # pointed at the notebook cell and its line (the magic line is line 1), once
            assert outcome["error"]["cell_id"] == "tickets-06"
            assert outcome["error"]["line"] == 4
            assert outcome["error"]["text"].startswith("notebook cell 7 (api classify) line 4:")
            assert "service.py" not in outcome["error"]["text"]
            after = call(lab, "GET", f"nbento/servers/{server['id']}").json()
            assert after["state"] == "reload-failed"
            assert after["error"] == outcome["server"]["error"]
            assert f"generation {server['generation']}" in after["reload_error"]
            still = call(lab, "POST", f"nbento/servers/{server['id']}/call/classify", body).json()
            assert still["status"] == 200

            # a syntax error never reaches the server: still one answer with the cell and line
            api_cell["source"] = "%%nbento api classify\ndef classify(texts: list[str]) -> dict:\n    return {'labels': texts\n"
            nb_path.write_text(json.dumps(nb))
            reload = call(lab, "POST", f"nbento/servers/{server['id']}/reload")
            assert reload.status_code == 200, reload.text
            syntax = reload.json()
            assert syntax["ok"] is False and syntax["server"]["state"] == "reload-failed"
            assert syntax["error"]["cell_id"] == "tickets-06" and syntax["error"]["line"] == 3
        finally:
            nb_path.write_text(original)
        fixed = call(lab, "POST", f"nbento/servers/{server['id']}/reload").json()
        assert fixed["ok"] is True
        assert fixed["server"]["state"] == "running" and fixed["server"]["error"] is None
        assert fixed["server"]["last_save"]["text"].startswith("saved: reloaded in")
    finally:
        stopped = call(lab, "DELETE", f"nbento/servers/{server['id']}")
    assert stopped.status_code == 200 and stopped.json()["stopped"] == server["id"]
    assert call(lab, "GET", "nbento/servers").json()["servers"] == []


@pytest.mark.slow
def test_export_job_reports_progress_and_paths(lab: LabServer, model_tag: str) -> None:
    started = call(lab, "POST", "nbento/exports",
                   {"notebook": "support_tickets.ipynb", "split_runners": True, "image": "tickets:dev"})
    assert started.status_code == 202, started.text
    job = _poll_job(lab, started.json()["id"])
    assert job["state"] == "done", job["error"] or job["log"]
    assert job["progress"] == 1.0 and any("Bento" in line for line in job["log"])
    result = job["result"]
    assert Path(result["bento"]).is_dir() and Path(result["bento"]).is_relative_to(lab.home)
    assert Path(result["manifests_dir"]) == lab.root / "k8s-support_tickets"
    files = [Path(f) for f in result["manifests"]]
    assert files and all(f.is_file() for f in files)
    docs = [d for f in files for d in yaml.safe_load_all(f.read_text()) if d]
    deployments = [d for d in docs if d["kind"] == "Deployment"]
    assert len(deployments) == 2  # split runners: the API server and the classifier runner
    images = {c["image"] for d in deployments for c in d["spec"]["template"]["spec"]["containers"]}
    assert images == {"tickets:dev"}
