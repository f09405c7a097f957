"""Each service serves its API documentation, Swagger UI's scripts and styles included,
itself: the page works on a network that reaches no CDN (an air-gapped district)."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

from services.notify.main import spec as notify_spec
from services.voting.main import spec as voting_spec
from tests.support.auth import auth_settings
from yishi.runtime import create_app
from yishi.settings import Settings

# src="...", href="..." and the quoted URLs of the page's inline script.
_REFERENCE = re.compile(r"""(?:src|href)\s*=\s*["']([^"']+)["']|\burl\s*:\s*["']([^"']+)["']""")


@pytest.fixture(scope="module", params=[voting_spec, notify_spec], ids=["voting", "notify"])
def client(request):
    app = create_app(request.param(), Settings(database_url="postgresql://unused", kafka_bootstrap="unused:9092",
                                               **auth_settings()))
    return TestClient(app)  # no `with`: the lifespan (database, broker) never starts


def test_the_docs_page_names_no_outside_address(client):
    page = client.get("/docs")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "SwaggerUIBundle" in page.text
    assert not re.search(r"https?://|[\"'(]//", page.text), "the page loads something from outside the service"
    assert "validatorUrl\": null" in page.text or "validatorUrl: null" in page.text, \
        "Swagger UI would fetch its validator badge from validator.swagger.io"


def test_every_asset_the_docs_page_names_is_served_by_the_service(client):
    page = client.get("/docs").text
    references = {a or b for a, b in _REFERENCE.findall(page)}
    assets = {ref for ref in references if ref.endswith((".js", ".css", ".png"))}
    assert {ref.rsplit(".", 1)[1] for ref in assets} == {"js", "css", "png"}, references
    sizes = {}
    for ref in sorted(assets):
        answer = client.get(ref)
        assert answer.status_code == 200, ref
        sizes[ref.rsplit("/", 1)[1]] = len(answer.content)
    assert sizes["swagger-ui-bundle.js"] > 500_000 and sizes["swagger-ui.css"] > 50_000, sizes
    assert "/openapi.json" in references
    assert client.get("/openapi.json").json()["info"]["title"].startswith("Yishi ")


def test_no_other_docs_page_loads_a_cdn(client):
    # FastAPI's ReDoc page loads its script from a CDN and its fonts from Google.
    assert client.get("/redoc").status_code == 404
