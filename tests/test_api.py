"""Bad input to the API gets 422 with the field named, or 404 for ids that cannot exist;
never a 500, and every error has the same JSON shape."""

import pytest
from sqlalchemy import event

from app.errors import Conflict, InvalidInput
from app.extensions import db
from tests.helpers import incident

LISTS = ["/api/incidents", "/api/suppliers", "/api/demand-points", "/api/drills"]
BY_ID = ["/api/incidents/{}", "/api/incidents/{}/figures"]
WITHOUT_ARGUMENTS = ["/api/health", "/api/incidents/1", "/api/incidents/1/figures"]

MAX_INT32 = 2**31 - 1
NOT_PLAIN_DIGITS = [
    "NaN",
    "nan",
    "Infinity",
    "-Infinity",
    "inf",
    "1e999",
    "1e3",
    "-0",
    "+1",
    "1.0",
    "1_000",
    " 1",
    "١",
    "",
    "abc",
    "99999999999999999999",
    "9" * 5000,
]


def query_errors(response):
    assert response.status_code == 422, response.get_data(as_text=True)
    return response.get_json()["errors"]["query"]


@pytest.fixture
def statements(app):
    """The SQL statements the app sends while the test runs."""
    sent = []

    def record(conn, cursor, statement, parameters, context, executemany):
        sent.append(statement)

    event.listen(db.engine, "before_cursor_execute", record)
    yield sent
    event.remove(db.engine, "before_cursor_execute", record)


@pytest.mark.parametrize("url", LISTS)
@pytest.mark.parametrize("field", ["limit", "offset"])
@pytest.mark.parametrize("value", [MAX_INT32 + 1, 99999999999999999999])
def test_paging_beyond_32_bits_is_refused_with_the_field_named(client, url, field, value):
    errors = query_errors(client.get(f"{url}?{field}={value}"))

    assert list(errors) == [field]


@pytest.mark.parametrize("url", LISTS)
def test_the_largest_offset_gives_an_empty_page(client, url):
    """The bound itself must fit the database's integers on every backend."""
    response = client.get(f"{url}?offset={MAX_INT32}")

    assert response.status_code == 200
    assert response.get_json() == []


@pytest.mark.parametrize("url", LISTS)
@pytest.mark.parametrize("value", NOT_PLAIN_DIGITS)
def test_paging_numbers_must_be_plain_digits(client, url, value):
    for field in ("limit", "offset"):
        errors = query_errors(client.get(url, query_string={field: value}))

        assert list(errors) == [field]


@pytest.mark.parametrize("url", LISTS)
def test_a_query_field_given_twice_is_refused(client, url):
    errors = query_errors(client.get(f"{url}?limit=1&limit=2&offset=0"))

    assert errors == {"limit": ["Given more than once."]}


@pytest.mark.parametrize("url", LISTS)
def test_an_unknown_field_given_twice_is_refused_as_unknown(client, url):
    errors = query_errors(client.get(f"{url}?colour=red&colour=blue"))

    assert errors == {"colour": ["Unknown field."]}


@pytest.mark.parametrize("url", WITHOUT_ARGUMENTS)
@pytest.mark.parametrize("query", ["x=1", "x=NaN", "limit=1"])
def test_endpoints_without_arguments_refuse_any_query_field(client, region, url, query):
    incident()

    errors = query_errors(client.get(f"{url}?{query}"))

    assert list(errors) == [query.split("=")[0]]


@pytest.mark.parametrize("url", WITHOUT_ARGUMENTS)
def test_endpoints_without_arguments_answer_without_a_query(client, region, url):
    incident()

    assert client.get(url).status_code == 200


@pytest.mark.parametrize("url", BY_ID)
@pytest.mark.parametrize("incident_id", ["0", "-1", "2147483648", "99999999999999999999"])
def test_ids_that_cannot_name_a_row_are_404_without_a_query(client, statements, url, incident_id):
    response = client.get(url.format(incident_id))

    assert response.status_code == 404
    assert response.get_json()["code"] == 404
    assert statements == []


@pytest.mark.parametrize("url", BY_ID)
@pytest.mark.parametrize("incident_id", [1, MAX_INT32])
def test_ids_of_missing_incidents_are_404(client, url, incident_id):
    response = client.get(url.format(incident_id))

    assert response.status_code == 404
    assert response.get_json()["message"] == f"No incident {incident_id}."


@pytest.mark.parametrize("url", [url.format("{incident_id}") for url in BY_ID])
def test_openapi_documents_the_id_range(client, url):
    spec = client.get("/api/openapi.json").get_json()

    (parameter,) = spec["paths"][url]["parameters"]
    assert parameter["schema"] == {"type": "integer", "minimum": 1, "maximum": MAX_INT32}


def _raise(error):
    def view():
        raise error

    return view


@pytest.mark.parametrize(
    "make_response, code",
    [
        (lambda client: client.get("/api/incidents/1"), 404),
        (lambda client: client.get("/api/no-such-endpoint"), 404),
        (lambda client: client.get("/api/suppliers?limit=0"), 422),
        (lambda client: client.get("/api/health?x=1"), 422),
        (lambda client: client.put("/api/suppliers"), 405),
        (lambda client: client.get("/test/conflict"), 409),
        (lambda client: client.get("/test/invalid"), 422),
    ],
)
def test_every_error_has_one_json_shape(app, client, make_response, code):
    """Clients read `code`, `status` and `message`, and `errors` on 422, whatever failed."""
    app.add_url_rule("/test/conflict", view_func=_raise(Conflict("Over-allocated.")))
    app.add_url_rule(
        "/test/invalid",
        endpoint="invalid",
        view_func=_raise(InvalidInput("File refused.", {"row 3": ["Not a number."]})),
    )

    response = make_response(client)
    body = response.get_json()

    assert response.status_code == code
    expected = {"code", "status", "message"} | ({"errors"} if code == 422 else set())
    assert set(body) == expected
    assert body["code"] == code
    assert isinstance(body["status"], str) and body["status"][0].isupper()
    assert isinstance(body["message"], str) and body["message"]
    if code == 422:
        assert body["errors"]


def test_domain_and_http_errors_name_the_same_status(app, client):
    app.add_url_rule("/test/invalid", view_func=_raise(InvalidInput("File refused.")))

    domain = client.get("/test/invalid").get_json()
    http = client.get("/api/health?x=1").get_json()

    assert domain["status"] == http["status"] == "Unprocessable Entity"
    assert domain["errors"] == {}


def test_method_not_allowed_says_which_methods_are(client):
    response = client.delete("/api/suppliers")

    assert response.status_code == 405
    assert "GET" in response.headers["Allow"]


def test_json_carries_chinese_literally(client, region):
    response = client.get("/api/suppliers?limit=1000")

    assert "老街坊".encode() in response.get_data()
