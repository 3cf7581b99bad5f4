"""hean.cli.argtypes: the number types every command's options share."""

from __future__ import annotations

import argparse

import pytest

from hean.cli.argtypes import non_negative_float, positive_float


@pytest.mark.parametrize("text", ["0.5", "1", "1e3"])
def test_positive(text: str) -> None:
    assert positive_float(text) == float(text)


@pytest.mark.parametrize(
    ("text", "why"),
    [("0", "positive"), ("-1", "positive"), ("x", "expected a number"), ("nan", "finite"),
     ("inf", "finite")],
)  # fmt: skip
def test_not_positive(text: str, why: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match=why):
        positive_float(text)


@pytest.mark.parametrize("text", ["0", "0.00", "2.5"])
def test_non_negative(text: str) -> None:
    # "0.00" was refused by hean chaos's own copy of this type
    assert non_negative_float(text) == float(text)


@pytest.mark.parametrize("text", ["-0.1", "nan", "x"])
def test_negative_refused(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        non_negative_float(text)
