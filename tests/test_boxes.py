"""Box files for ``camtool eval``: CSV and Pascal VOC / ImageNet XML, and refusing unsafe XML."""

from __future__ import annotations

from pathlib import Path

import pytest

from camtool.core.localize import BoxXYXY
from camtool.data.boxes import (
    GroundTruth,
    GtBox,
    fit_boxes,
    load_boxes,
    read_csv_boxes,
    read_voc_dir,
    read_voc_file,
)
from camtool.errors import InputError

VOC = """<?xml version="1.0"?>
<annotation>
  <folder>val</folder>
  <filename>{name}</filename>
  <size><width>{w}</width><height>{h}</height><depth>3</depth></size>
  <object>
    <name>n01440764</name>
    <bndbox><xmin>1</xmin><ymin>2</ymin><xmax>10</xmax><ymax>20</ymax></bndbox>
  </object>
  <object>
    <name>n01440764</name>
    <bndbox><xmin>30.5</xmin><ymin>0</ymin><xmax>40</xmax><ymax>{h}</ymax></bndbox>
  </object>
</annotation>
"""


def voc(path: Path, name: str = "ILSVRC2012_val_00000001", w: int = 64, h: int = 48) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(VOC.format(name=name, w=w, h=h), encoding="utf-8")
    return path


def test_csv_several_boxes_per_image_relative_and_absolute(tmp_path: Path) -> None:
    elsewhere = tmp_path / "other" / "x.png"
    (tmp_path / "boxes.csv").write_text(
        f"path,x0,y0,x1,y1\nval/a/1.png,0,0,5,5\nval/a/1.png,10,10,20,30\n{elsewhere},1,2,3,4\n",
        encoding="utf-8",
    )
    gt = load_boxes(None, tmp_path)  # the dataset's own boxes.csv
    assert gt is not None and gt.n_boxes == 3
    first, second, missing = gt.match(
        [tmp_path / "val" / "a" / "1.png", elsewhere, tmp_path / "val" / "a" / "2.png"]
    )
    assert first is not None and [b.box for b in first] == [
        BoxXYXY(0, 0, 5, 5),
        BoxXYXY(10, 10, 20, 30),
    ]
    assert first[1].origin.endswith("boxes.csv line 3")
    assert second is not None and second[0].box == BoxXYXY(1, 2, 3, 4)
    assert missing is None


def test_no_default_box_file_is_none(tmp_path: Path) -> None:
    assert load_boxes(None, tmp_path) is None


def test_csv_bad_row_names_file_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "b.csv"
    bad.write_text("path,x0,y0,x1,y1\nval/a/1.png,0,0,5,5\nval/a/2.png,0,zero,5,5\n")
    with pytest.raises(InputError, match=r"b\.csv line 3: y0 is not a number"):
        read_csv_boxes(bad, tmp_path)


def test_csv_header_only_is_an_error(tmp_path: Path) -> None:
    empty = tmp_path / "b.csv"
    empty.write_text("path,x0,y0,x1,y1\n")
    with pytest.raises(InputError, match="no box"):
        read_csv_boxes(empty, tmp_path)


def test_missing_box_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="box file not found"):
        load_boxes(tmp_path / "nope.csv", tmp_path)


def test_voc_file_one_based_corners_and_stem(tmp_path: Path) -> None:
    stem, boxes = read_voc_file(voc(tmp_path / "a.xml"))
    assert stem == "ILSVRC2012_val_00000001"
    assert [b.box for b in boxes] == [BoxXYXY(0, 1, 10, 20), BoxXYXY(29, 0, 40, 48)]
    assert boxes[0].declared_size == (64, 48)
    assert boxes[0].origin == f"{tmp_path / 'a.xml'} line 8"


def test_voc_filename_with_extension_is_matched_by_stem(tmp_path: Path) -> None:
    voc(tmp_path / "ann" / "one.xml", name="dog_7.JPEG")
    gt = load_boxes(tmp_path / "ann", tmp_path)
    assert gt is not None
    (match,) = gt.match([tmp_path / "val" / "dog" / "dog_7.png"])
    assert match is not None and len(match) == 2


def test_voc_folder_recursive_and_single_file(tmp_path: Path) -> None:
    voc(tmp_path / "ann" / "n1" / "a.xml", name="img_a")
    voc(tmp_path / "ann" / "n2" / "b.xml", name="img_b")
    gt = read_voc_dir(tmp_path / "ann")
    assert sorted(gt.by_stem) == ["img_a", "img_b"] and gt.n_boxes == 4
    single = load_boxes(tmp_path / "ann" / "n1" / "a.xml", tmp_path)
    assert single is not None and list(single.by_stem) == ["img_a"]


def test_voc_duplicate_stem_is_an_error(tmp_path: Path) -> None:
    voc(tmp_path / "ann" / "a.xml", name="same")
    voc(tmp_path / "ann" / "b.xml", name="same.jpg")
    with pytest.raises(InputError, match="annotated twice"):
        read_voc_dir(tmp_path / "ann")


def test_voc_empty_folder_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "ann").mkdir()
    with pytest.raises(InputError, match=r"no \.xml"):
        read_voc_dir(tmp_path / "ann")


def test_voc_malformed_names_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.xml"
    bad.write_text("<annotation>\n<filename>x</filename>\n<object>\n</annotation>\n")
    with pytest.raises(InputError, match=r"bad\.xml line 4: not well-formed XML"):
        read_voc_file(bad)


def test_voc_missing_coordinate_names_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.xml"
    bad.write_text(
        "<annotation>\n<filename>x</filename>\n<object>\n"
        "<bndbox><xmin>1</xmin><ymin>1</ymin><xmax>5</xmax></bndbox>\n</object>\n</annotation>\n"
    )
    with pytest.raises(InputError, match=r"bad\.xml line 4: <bndbox> lacks <ymax>"):
        read_voc_file(bad)


def test_voc_non_numeric_and_wrong_root(tmp_path: Path) -> None:
    bad = tmp_path / "bad.xml"
    bad.write_text(
        "<annotation><object><bndbox><xmin>a</xmin><ymin>1</ymin><xmax>5</xmax>"
        "<ymax>5</ymax></bndbox></object></annotation>"
    )
    with pytest.raises(InputError, match="<xmin> is not a number"):
        read_voc_file(bad)
    bad.write_text("<root/>")
    with pytest.raises(InputError, match="expected <annotation>"):
        read_voc_file(bad)


def test_voc_box_past_the_edge_is_clipped_with_a_warning(tmp_path: Path) -> None:
    file = voc(tmp_path / "a.xml", w=36)  # the second box ends at x = 40, 4 px past the edge
    _, entries = read_voc_file(file)
    notes: list[str] = []
    boxes = fit_boxes(entries, tmp_path / "img.png", 36, 48, notes.append)
    assert boxes == [BoxXYXY(0, 1, 10, 20), BoxXYXY(29, 0, 36, 48)]
    assert notes == [
        f"{file} line 12: box 29,0,40,48 extends past its 36x48 image {tmp_path / 'img.png'};"
        " clipped to 29,0,36,48"
    ]


def test_voc_box_wholly_outside_is_refused(tmp_path: Path) -> None:
    expected = r"a\.xml line 12: box \(30\.5,0,40,48\) lies wholly outside the 20x48 image"
    with pytest.raises(InputError, match=expected):
        read_voc_file(voc(tmp_path / "a.xml", w=20))


@pytest.mark.parametrize(
    "text",
    [
        '<?xml version="1.0"?>\n<!DOCTYPE annotation [<!ENTITY a "aaaa">]>\n'
        "<annotation><filename>&a;</filename></annotation>",
        '<?xml version="1.0"?>\n<!doctype annotation SYSTEM "file:///etc/passwd">\n<annotation/>',
    ],
)
def test_xml_with_doctype_or_entity_is_refused(tmp_path: Path, text: str) -> None:
    bad = tmp_path / "evil.xml"
    bad.write_text(text)
    with pytest.raises(InputError, match="refusing XML with a DOCTYPE or ENTITY"):
        read_voc_file(bad)


def test_doctype_hidden_by_encoding_is_refused_by_the_parser(tmp_path: Path) -> None:
    bad = tmp_path / "evil.xml"
    text = '<?xml version="1.0" encoding="UTF-16"?>\n<!DOCTYPE a [<!ENTITY x "y">]>\n<a>&x;</a>'
    bad.write_bytes(text.encode("utf-16"))
    assert b"<!DOCTYPE" not in bad.read_bytes()  # the byte check alone would miss it
    with pytest.raises(InputError, match="line 2: refusing XML with a DOCTYPE or ENTITY"):
        read_voc_file(bad)


def test_fit_boxes_checks_and_rescales(tmp_path: Path) -> None:
    image = tmp_path / "i.png"
    inside = GtBox(BoxXYXY(0, 0, 10, 10), "f.csv line 2")
    assert fit_boxes([inside], image, 10, 10) == [BoxXYXY(0, 0, 10, 10)]
    notes: list[str] = []
    assert fit_boxes([inside], image, 9, 10, notes.append) == [BoxXYXY(0, 0, 9, 10)]
    assert notes == [
        f"f.csv line 2: box 0,0,10,10 extends past its 9x10 image {image}; clipped to 0,0,9,10"
    ]
    outside = GtBox(BoxXYXY(12, 0, 20, 10), "f.csv line 3")
    with pytest.raises(InputError, match=r"f\.csv line 3: box 12,0,20,10 lies wholly outside"):
        fit_boxes([outside], image, 10, 10)
    drawn_bigger = GtBox(BoxXYXY(10, 20, 50, 40), "a.xml line 8", declared_size=(100, 50))
    assert fit_boxes([drawn_bigger], image, 50, 25) == [BoxXYXY(5, 10, 25, 20)]
    with pytest.raises(InputError, match="of another shape"):
        fit_boxes([drawn_bigger], image, 50, 50)


def test_match_none_and_ambiguous_stems(tmp_path: Path) -> None:
    gt = GroundTruth(tmp_path / "ann", by_stem={"x": [GtBox(BoxXYXY(0, 0, 1, 1), "a.xml line 3")]})
    with pytest.raises(InputError, match="names any of the 1 images"):
        gt.match([tmp_path / "y.png"])
    with pytest.raises(InputError, match="matches both"):
        gt.match([tmp_path / "a" / "x.png", tmp_path / "b" / "x.png"])
