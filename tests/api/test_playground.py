"""The playground page and its files, over the in-process app: what a browser is sent, without a browser.

(tests/api/test_playground_browser.py runs it in Chromium against `kobo serve`.)
"""

from __future__ import annotations

import json
import re
import tomllib
from fnmatch import fnmatch
from pathlib import Path

import httpx
from graphql import parse, validate

from app.graphql.schema import schema
from app.playground.examples import EXAMPLES
from app.playground.page import STATIC_DIR

ROOT = Path(__file__).resolve().parents[2]
QUICKSTART_STEPS = [
    "createCustomer",
    "createMetric",
    "createPlan",
    "createSubscription",
    "ingestEvents",
    "generateInvoice",
    "customerByExternalId",
    "finalizeInvoice",
    "markInvoicePaid",
]


def test_every_example_is_a_valid_operation_whose_variables_it_declares() -> None:
    assert [re.search(r"\{\s*(\w+)", example.query).group(1) for example in EXAMPLES] == QUICKSTART_STEPS  # type: ignore[union-attr]
    for example in EXAMPLES:
        document = parse(example.query)
        assert validate(schema._schema, document) == [], example.query
        declared = {variable.variable.name.value for variable in document.definitions[0].variable_definitions}  # type: ignore[attr-defined]
        assert declared == set(example.variables), example.query


async def test_a_browser_gets_the_page_and_every_file_it_names_from_kobo_itself(http: httpx.AsyncClient) -> None:
    # when a browser asks for /graphql
    page = await http.get("/graphql", headers={"Accept": "text/html"})

    # then it gets Kobo's page, told to load nothing from anywhere else, with the examples in it
    assert page.status_code == 200 and "Kobo playground" in page.text
    policy = page.headers["content-security-policy"]
    assert "default-src 'none'" in policy and "script-src 'self'" in policy and "connect-src 'self'" in policy
    names = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert names and all(name.startswith("/playground/static/") or name.startswith("data:") for name in names)
    config = json.loads(re.search(r'id="kobo-playground-config">(.*?)</script>', page.text, re.S).group(1))  # type: ignore[union-attr]
    assert config["endpoint"] == "/graphql" and len(config["tabs"]) == len(EXAMPLES)
    assert json.loads(config["tabs"][0]["variables"])["input"]["externalId"] == "cus_42"
    # and every file it names is served, without a key
    for name in names:
        if not name.startswith("data:"):
            assert (await http.get(name)).status_code == 200, name


async def test_the_page_needs_no_key_but_a_query_still_does(http: httpx.AsyncClient) -> None:
    answer = await http.post("/graphql", json={"query": "{ __typename }"})
    assert answer.status_code == 401
    assert answer.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


def test_vendored_files_ship_with_their_licences_and_in_the_wheel() -> None:
    vendored = [path for path in (STATIC_DIR / "vendor").iterdir() if path.is_dir()]
    assert {path.name.rsplit("-", 1)[0] for path in vendored} == {"graphiql", "react", "react-dom"}
    for folder in vendored:
        assert (folder / "LICENSE").read_text().startswith("MIT License"), folder
    # every file of the playground matches a package-data pattern, so a wheel (not only a checkout) serves it
    patterns = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    package = STATIC_DIR.parent
    for path in package.rglob("*"):
        if path.is_file() and path.suffix != ".py" and "__pycache__" not in path.parts:
            relative = path.relative_to(package).as_posix()
            assert any(fnmatch(relative, pattern) for pattern in patterns["app.playground"]), relative
