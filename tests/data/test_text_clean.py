"""The one item-text cleaning function (recx/data/text_clean.py)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from recx.data.text_clean import clean_field, clean_item_frame, has_text


@pytest.mark.parametrize(("raw", "clean"), [
    ("  Toy\n  Story\t", "Toy Story"),  # whitespace collapsed
    ("Arts, Music &amp; Photography", "Arts, Music & Photography"),  # entity
    ("Tom &amp;amp; Jerry", "Tom & Jerry"),  # double-escaped entity
    ("<p>Great <b>blocks</b></p>", "Great blocks"),  # tags
    ('<span class="a-size-medium a-color-secondary"', ""),  # unterminated tag = junk
    ("var aPageStart = (new Date()).getTime();", ""),  # scraped JavaScript
    (".a-box { display: block; }", ""),  # CSS
    ("https://images.example.com/x.jpg", ""),  # a bare URL is not text
    ("Caf\u00e9 \u200bBleu\x07", "Café Bleu"),  # control / zero-width characters
    (None, ""),
    (float("nan"), ""),
    (1995.0, "1995"),  # a year read as float
    (42, "42"),
    ("2 < 3 and 5 > 4", "2 < 3 and 5 > 4"),  # a bare '<' is not a tag
])
def test_clean_strings(raw, clean):
    assert clean_field(raw) == clean


def test_lists_are_flattened_deduplicated_and_joined():
    assert clean_field([["Beauty", "Skin Care"], ["beauty", "Face"], "", None]) == \
        "Beauty, Skin Care, Face"
    assert clean_field(np.array(["a", "b"], dtype=object)) == "a, b"
    assert clean_field([]) == ""


def test_long_fields_are_capped_at_a_word_boundary():
    text = " ".join(["word"] * 400)  # 1,999 characters
    out = clean_field(text, max_chars=100)
    assert len(out) <= 100 and out.endswith("word") and "  " not in out
    assert clean_field(text, max_chars=None) == text
    assert len(clean_field("x" * 5000)) == 1000  # default cap; no space: hard cut


def test_item_frame_cleaning_and_text_mask():
    items = pd.DataFrame({"item": [1, 2, 3], "title": ["<i>A</i>", None, "  "],
                          "brand": ["", "", "Fish &amp; Chips&lt;br&gt;Co"]})
    out = clean_item_frame(items)
    assert out["item"].tolist() == ["1", "2", "3"]
    assert out["title"].tolist() == ["A", "", ""]
    assert out["brand"].tolist() == ["", "", "Fish & Chips Co"]  # escaped tags are tags too
    assert has_text(out, ["title", "brand"]).tolist() == [True, False, True]
    assert has_text(out, ["title"]).tolist() == [True, False, False]
