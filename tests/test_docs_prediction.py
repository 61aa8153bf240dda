"""docs/prediction.md runs: its examples are executed as a doctest from the repository root."""

import doctest
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_prediction_page_examples_run(monkeypatch):
    monkeypatch.chdir(ROOT)
    res = doctest.testfile(str(ROOT / "docs" / "prediction.md"), module_relative=False,
                           optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert res.failed == 0 and res.attempted > 15
