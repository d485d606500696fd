"""Reading executions over a real server: the document's ``input`` (tour 25 M5), a
workflow filter that names no workflow (M9) and a short id (L5)."""

from __future__ import annotations

from tests.api.conftest import Service
from tests.api.helpers import HELLO, error, push, settled, start


def test_the_document_carries_the_input(service: Service) -> None:
    with service.client("admin") as admin, service.client("operator") as http:
        name = push(admin, HELLO)
        doc = start(http, name, {"who": "Bo"})
        assert doc["input"] == {"who": "Bo"}  # what templates read as `input`
        assert settled(http, doc["id"])["input"] == {"who": "Bo"}
        listed = http.get("/api/v1/executions", params={"workflow": name}).json()["items"]
        assert [d["input"] for d in listed] == [{"who": "Bo"}]


def test_a_workflow_filter_that_names_no_workflow_says_so(service: Service) -> None:
    with service.client("admin") as admin, service.client("viewer") as http:
        name = push(admin, HELLO)
        said = error(http.get("/api/v1/executions", params={"workflow": name + "x"}), 404)
        assert said["message"] == f"there is no workflow named '{name}x'; did you mean '{name}'?"
        found = http.get("/api/v1/executions", params={"workflow": name})
        assert found.status_code == 200 and found.json()["items"] == []


def test_a_short_id_is_told_that_the_api_takes_whole_ids(service: Service) -> None:
    with service.client("admin") as admin, service.client("viewer") as http:
        doc = start(admin, push(admin, HELLO), {"who": "Al"})
        short = doc["id"][:8]
        for path in (f"/executions/{short}", f"/executions/{short}/events"):
            said = error(http.get(f"/api/v1{path}"), 404)
            assert said["message"] == (
                f"execution {short} does not exist; it begins the id of execution "
                f"{doc['id']}: the API takes whole ids"
            ), path
        whole = "f" * 8 + doc["id"][8:]  # a whole id that names none: only that
        said = error(http.get(f"/api/v1/executions/{whole}"), 404)
        assert said["message"] == f"execution {whole} does not exist"
        assert error(http.get("/api/v1/executions/zzzz"), 404)["message"] == (
            "execution zzzz does not exist"
        )
