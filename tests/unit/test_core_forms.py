"""The WTForms base: a version field refuses what the database could not bind (a forged huge number)."""

from werkzeug.datastructures import MultiDict

from app.core.forms import Form, VersionField


class _Versioned(Form):
    version = VersionField()


def _check(app, value):
    with app.test_request_context():
        form = _Versioned(formdata=MultiDict({"version": value}), meta={"csrf": False})
        return form.validate(), form.version.errors


def test_a_version_beyond_the_integer_column_is_a_field_error(app):
    for forged in (str(2 ** 70), str(2 ** 31), "9" * 400, "9" * 5000, "-1", "1e3", "", "x"):
        ok, errors = _check(app, forged)
        assert not ok and errors and "版本号" in errors[0], forged
    assert _check(app, "7") == (True, [])
