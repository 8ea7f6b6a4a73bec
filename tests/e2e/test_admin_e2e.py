import pytest
from sqlalchemy import select

from app.extensions import db
from app.models import Assignment
from tests.e2e.conftest import sign_in

pytestmark = pytest.mark.e2e


def _assigned(app, reviewer_id: int, nomination_id: int) -> bool:
    with app.app_context():
        found = db.session.scalar(select(Assignment.id).where(Assignment.reviewer_id == reviewer_id,
                                                              Assignment.nomination_id == nomination_id))
        db.session.remove()
        return found is not None


def test_admin_toggles_a_matrix_cell_in_place(live_server, browser_context):
    page = browser_context().new_page()
    sign_in(page, live_server, "admin")
    page.goto(live_server.url + "/admin/assignments?category=unit")
    box = page.locator("input[type=checkbox][name=a][hx-post]:checked").first
    reviewer_id, nomination_id = (int(x) for x in box.get_attribute("value").split("-"))
    assert _assigned(live_server.app, reviewer_id, nomination_id)
    url_before = page.url

    with page.expect_response(lambda r: r.url.endswith("/admin/assignments/cell")) as answer:
        box.uncheck()
    assert answer.value.status == 200
    cell = page.locator(f"input[type=checkbox][value='{reviewer_id}-{nomination_id}']")
    assert not cell.is_checked()  # the swapped-in cell shows the stored state
    assert not _assigned(live_server.app, reviewer_id, nomination_id)
    assert page.url == url_before  # swapped in place, no navigation

    with page.expect_response(lambda r: r.url.endswith("/admin/assignments/cell")) as answer:
        cell.check()
    assert answer.value.status == 200
    assert page.locator(f"input[type=checkbox][value='{reviewer_id}-{nomination_id}']").is_checked()
    assert _assigned(live_server.app, reviewer_id, nomination_id)
