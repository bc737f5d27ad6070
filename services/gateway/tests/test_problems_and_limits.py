"""Error responses are RFC 9457 problems; oversized bodies are refused before a route reads them."""

from http import HTTPStatus

from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import BaseModel
from sutazai_gateway.body_limit import BodySizeLimit
from sutazai_gateway.nul_guard import RefuseNul
from sutazai_gateway.problems import install_problem_handlers


class _Body(BaseModel):
    name: str


def _app(max_bytes: int = 2048) -> FastAPI:
    app = FastAPI()
    install_problem_handlers(app)
    app.add_middleware(RefuseNul)
    app.add_middleware(BodySizeLimit, max_bytes=max_bytes)
    seen: list[str] = []
    app.state.seen = seen

    @app.post("/items")
    async def create(body: _Body) -> dict[str, str]:
        seen.append(body.name)
        return {"name": body.name}

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("secret internals")

    return app


def test_unknown_route_is_a_404_problem() -> None:
    response = TestClient(_app()).get("/nope")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json() == {"type": "about:blank", "title": "Not Found", "status": 404,
                               "detail": "Not Found", "instance": "/nope"}


def test_invalid_body_is_a_422_problem_listing_the_fields_and_changes_nothing() -> None:
    app = _app()
    client = TestClient(app)
    response = client.post("/items", json={"nom": "x"})
    assert response.status_code == 422
    problem = response.json()
    assert problem["title"] == HTTPStatus(422).phrase  # "Unprocessable Entity" on 3.11, "... Content" on 3.13
    assert problem["errors"][0]["location"] == ["body", "name"]
    malformed = client.post("/items", content=b"{not json", headers={"content-type": "application/json"})
    assert malformed.status_code == 422
    assert app.state.seen == []


def test_oversized_body_is_refused_with_413_before_the_route_runs() -> None:
    app = _app(max_bytes=1024)
    client = TestClient(app)
    response = client.post("/items", json={"name": "x" * 5000})
    assert response.status_code == 413
    assert response.headers["content-type"] == "application/problem+json"
    assert "1024 bytes" in response.json()["detail"]
    assert app.state.seen == []
    # A chunked body carries no Content-Length: it is counted as it arrives.
    streamed = client.post("/items", content=(c for c in [b"x" * 700, b"x" * 700]))
    assert streamed.status_code == 413
    assert app.state.seen == []
    assert client.post("/items", json={"name": "ok"}).status_code == 200


def test_an_unhandled_error_is_a_500_problem_without_internals() -> None:
    response = TestClient(_app(), raise_server_exceptions=False).get("/boom")
    assert response.status_code == 500
    assert response.headers["content-type"] == "application/problem+json"
    assert "secret internals" not in response.text


def test_nul_in_a_body_or_query_is_a_422_problem_before_the_route_runs() -> None:
    app = _app()
    client = TestClient(app)
    as_json = {"content-type": "application/json"}
    for response in (client.post("/items", json={"name": "a\x00b"}),
                     client.post("/items", content=b'{"name": "a\\u0000b"}', headers=as_json),
                     client.post("/items?x=%00", json={"name": "ok"})):
        assert response.status_code == 422, response.text
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["errors"][0]["type"] == "nul_character"
    assert app.state.seen == []
    # An escaped backslash followed by "u0000" is plain text, and a chunked body still arrives whole.
    assert client.post("/items", json={"name": "\\u0000"}).json() == {"name": "\\u0000"}
    assert client.post("/items", content=(c for c in [b'{"na', b'me": "x"}']), headers=as_json).json() == {"name": "x"}
    split = client.post("/items", content=(c for c in [b'{"name": "a\\u00', b'00b"}']), headers=as_json)
    assert split.status_code == 422
