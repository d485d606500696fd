"""api.errors: a request no route takes says what and where, in the error envelope
(tour 22C F6: it was ``http_405 "Method Not Allowed"`` and ``http_404 "Not Found"``)."""

from __future__ import annotations

from tests.api.conftest import Service
from tests.api.helpers import error


def test_an_unknown_path_is_404_naming_it(service: Service) -> None:
    with service.client("viewer") as http:
        for path in ("/api/v1/foo", "/api/v1/executions/x/nothing", "/nowhere"):
            found = error(http.get(path), 404)
            assert (found["code"], found["message"]) == ("not_found", f"no route {path}")


def test_a_missing_static_file_is_404_saying_the_file_is_not_there(service: Service) -> None:
    """It said "no route /ui/static/…", as if nothing were served there."""
    with service.client() as http:
        assert http.get("/ui/static/app.css").status_code == 200
        for path in ("/ui/static/nope.css", "/ui/static/vendor/nope.js", "/ui/static/"):
            found = error(http.get(path), 404)
            assert (found["code"], found["message"]) == ("not_found", f"there is no file {path}")


def test_a_method_a_path_does_not_take_is_405_naming_the_ones_it_does(
    service: Service,
) -> None:
    """Allow named only the first route of the path: GET for /workflows/{name}, whose
    DELETE is another route."""
    with service.client("admin") as http:
        for method, path, allowed in (
            ("PUT", "/api/v1/executions", "GET"),
            ("PUT", "/api/v1/workflows/some-name", "GET, DELETE"),
            ("DELETE", "/hooks/some/path", "POST"),
            ("POST", "/healthz", "GET, HEAD"),
        ):
            answer = http.request(method, path)
            found = error(answer, 405)
            assert (found["code"], found["message"]) == (
                "method_not_allowed",
                f"no route {method} {path}; allowed: {allowed}",
            )
            assert answer.headers["Allow"] == allowed
