"""Fuzzing the parsers with hypothesis: odd input gives a Chinese error, never a crash."""

from hypothesis import given, settings
from hypothesis import strategies as st

from app.intake import nominations
from app.intake.docx_reader import read_docx
from app.intake.parsed import LABELS, ReadError, label_of
from app.intake.text import parse_count, parse_date

FIELDS = st.sampled_from(["title", "host", "contact_name", "contact_phone", "address", "event_count",
                          "people_served", "summary", "recommendation", "recommendation_date"])


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(FIELDS, st.one_of(st.text(max_size=600), st.integers(-10, 10**10), st.none())),
       st.sampled_from(["unit", "activity"]))
def test_validate_fields_answers_with_errors_not_exceptions(raw, category):
    cleaned = nominations.validate_fields(category, raw)
    for message in cleaned.errors.values():
        assert isinstance(message, str) and message
    if cleaned.ok:
        assert len(cleaned.values["summary"]) <= 500 and 0 <= cleaned.values["event_count"] <= 2_000_000_000


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=40))
def test_counts_and_dates_raise_only_value_errors(text):
    for parse in (parse_count, parse_date):
        try:
            parse(text)
        except ValueError:
            pass


@settings(max_examples=100, deadline=None)
@given(st.sampled_from(sorted(LABELS)), st.lists(st.sampled_from([" ", "　", "  "]), max_size=6), st.booleans())
def test_labels_survive_spaces_and_full_width_colons(label, spaces, colon):
    spaced = "".join(ch + (spaces[i] if i < len(spaces) else "") for i, ch in enumerate(label))
    assert label_of(spaced + ("：" if colon else "")) == LABELS[label]


@settings(max_examples=50, deadline=None)
@given(st.binary(max_size=2000))
def test_random_bytes_are_not_a_form(data):
    try:
        read_docx(b"PK\x03\x04" + data, "随机.docx")
    except ReadError as e:
        assert e.message
