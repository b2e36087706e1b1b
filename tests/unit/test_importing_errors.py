import pickle

from marketing.analytics.importing import CleanOptionError, ImportFileError, Issue
from marketing.analytics.importing.errors import short


def test_file_error_message_has_every_part():
    err = ImportFileError("not a number", file="shop.csv", row=7, column="price")
    assert str(err) == "shop.csv: row 7, column price: not a number"
    assert (err.file, err.row, err.column, err.reason) == ("shop.csv", 7, "price", "not a number")


def test_file_error_message_omits_missing_parts():
    assert str(ImportFileError("file is empty")) == "file is empty"
    assert str(ImportFileError("file is empty", file="a.csv")) == "a.csv: file is empty"
    assert str(ImportFileError("bad", row=3)) == "row 3: bad"
    assert str(ImportFileError("bad", file="a.csv", column="sku")) == "a.csv: column sku: bad"


def test_file_error_survives_pickling():
    # Celery and logging pickle exceptions; keyword-only arguments break the default way.
    err = pickle.loads(pickle.dumps(ImportFileError("bad", file="a.csv", row=2, column="x")))
    assert isinstance(err, ImportFileError)
    assert str(err) == "a.csv: row 2, column x: bad"


def test_issue_defaults_to_rejected_and_is_immutable():
    issue = Issue(row=2, column="price", value="abc", reason="not a number")
    assert issue.action == "rejected"
    try:
        issue.row = 3
    except AttributeError:
        pass
    else:
        raise AssertionError("Issue must be frozen")


def test_offending_values_are_cut_to_200_characters():
    assert short("x" * 500) == "x" * 199 + "…"
    assert len(short("x" * 500)) == 200
    assert short("ok") == "ok"
    assert short(None) == ""


def test_nul_characters_in_offending_values_are_shown_as_a_symbol():
    assert short("A\x001") == "A\u24001"


def test_clean_option_error_survives_pickling():
    err = pickle.loads(pickle.dumps(CleanOptionError("timezone", "unknown time zone 'X'")))
    assert (err.option, err.reason, str(err)) == ("timezone", "unknown time zone 'X'", err.reason)
