"""The plan pages: zh-CN by default, English on request; the editor saves a new version
for a signed-in commander with CSRF, and saves nothing when the plan is refused."""

import re

import pytest
from flask_babel import refresh

from app.process.services import latest_plan, plan_count

NAME = "zhenhai-catering-supply"


def _csrf(page):
    return re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page)[1]


def _textarea(page):
    import html

    return html.unescape(re.search(r"<textarea[^>]*>\r?\n?(.*?)</textarea>", page, re.S)[1])


def test_the_list_links_each_plan(client, region):
    page = client.get("/plans").get_data(as_text=True)

    assert "预案" in page and f'href="/plans/{NAME}"' in page


def test_a_plan_shows_levels_by_phase_duties_rules_and_versions(client, region):
    page = client.get(f"/plans/{NAME}").get_data(as_text=True)

    assert "特别重大" in page and "预警" in page and "终止与总结" in page
    assert "r-samples" in page and "每餐次每品种留样不少于125克" in page
    assert "《中华人民共和国食品安全法》第一百零五条" in page and "30 分钟" in page
    assert "由上级政府宣布启动" in page
    assert "受害人数 ≥ 100" in page and "分级标准" in page
    assert "第 1 版" in page


def test_a_plan_page_speaks_english_on_request(client, region):
    client.get(f"/plans/{NAME}")
    refresh()  # the test's app context outlives each request, and Babel keeps its choice there

    page = client.get(f"/plans/{NAME}?lang=en").get_data(as_text=True)

    assert "Response levels" in page and "Closure" in page
    assert "At least 125 g of every dish" in page
    assert "people harmed ≥ 100" in page


def test_a_missing_plan_is_a_404_page(client, region):
    response = client.get("/plans/nowhere")

    assert response.status_code == 404 and response.mimetype == "text/html"


@pytest.fixture
def editor(app, client, region):
    """Post YAML to the edit page as a signed-in commander with the CSRF token unless told."""
    from tests.helpers import make_user, sign_in

    user, _ = make_user("commander", department="government", password="pw-commander-123")
    sign_in(client, user.username, "pw-commander-123")
    page = client.get(f"/plans/{NAME}/edit").get_data(as_text=True)
    fields = {"csrf_token": _csrf(page), "document": _textarea(page)}

    def post(**changes):
        return client.post(f"/plans/{NAME}/edit", data={**fields, **changes})

    return post, fields["document"]


def test_the_editor_holds_the_current_version_as_yaml(editor):
    _, text = editor

    assert text.startswith(f"name: {NAME}\n")
    assert "food_safety_note:" in text and "镇海区" in text


def test_saving_the_same_text_stores_nothing_new(editor):
    post, _ = editor

    response = post()

    assert response.status_code == 303
    assert latest_plan(NAME).version == 1


def test_saving_a_change_stores_the_next_version(editor, client):
    post, text = editor

    response = post(document=text.replace("every_hours: 12", "every_hours: 6"))

    assert response.status_code == 303 and response.location.endswith(f"/plans/{NAME}")
    assert latest_plan(NAME).version == 2
    assert "第 2 版" in client.get(f"/plans/{NAME}").get_data(as_text=True)


@pytest.mark.parametrize(
    ("change", "named"),
    [
        (lambda t: t.replace("every_hours: 12", "every_hours: -1"), "sitreps.every_hours"),
        (lambda t: t.replace(f"name: {NAME}", "name: other-plan"), "请保持预案名称不变"),
        (lambda t: t + "name: again\n", "given twice"),
        (lambda t: "[", "not valid YAML"),
    ],
)
def test_a_refused_plan_shows_its_errors_and_saves_nothing(editor, change, named):
    post, text = editor

    response = post(document=change(text))

    page = response.get_data(as_text=True)
    assert response.status_code == 422
    assert named in page and "未保存任何内容" in page
    assert plan_count() == 1


def test_saving_needs_the_csrf_token(editor):
    post, text = editor
    changed = text.replace("every_hours: 12", "every_hours: 6")

    assert post(document=changed, csrf_token="forged").status_code == 422
    assert plan_count() == 1


def test_the_editor_needs_a_signed_in_commander(client, region):
    from tests.helpers import make_user, sign_in

    assert client.get(f"/plans/{NAME}/edit").status_code in (302, 303)
    user, _ = make_user("viewer", department="government", password="pw-viewer-1234")
    sign_in(client, user.username, "pw-viewer-1234")
    assert client.get(f"/plans/{NAME}/edit").status_code == 403
    assert plan_count() == 1


def test_text_from_the_plan_shows_literally(client, region, app):
    from app.extensions import db
    from app.fixtures import DEFAULT_PLAN, read_yaml
    from app.process.services import import_plan
    from tests.helpers import T0

    document = read_yaml(DEFAULT_PLAN)
    document["title"] = '<script>alert("预案")</script>'
    import_plan(document, T0)
    db.session.commit()

    page = client.get(f"/plans/{NAME}").get_data(as_text=True)

    assert "<script>alert" not in page and "&lt;script&gt;" in page


def test_the_navigation_links_the_plans(client):
    assert 'href="/plans"' in client.get("/").get_data(as_text=True)
