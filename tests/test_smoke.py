"""The app starts on each backend."""


def test_health_answers(client):
    assert client.get("/api/health").get_json() == {"status": "ok"}
