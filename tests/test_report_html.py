"""The one-file HTML report (``python -m lightrestore.report DIR... --html``): one section
per (task, protocol) group, the numbers of results.json, figures embedded as data: URIs,
incomplete runs flagged, text escaped."""

from __future__ import annotations

import base64
import json
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from PIL import Image

from lightrestore.reporting import html_report
from lightrestore.reporting.report import find_runs, main

PNG = b"\x89PNG\r\n\x1a\n"


# ------------------------------------------------------------------ fabricated run folders


def _row(psnr: float, extra: bool = False, **more: float) -> dict:
    row = {"range": "", "extra": extra, "psnr": psnr, "ssim": 0.5, "l1": 0.1, "l2": 0.01,
           "count": 4}  # fmt: skip
    return {**row, **more}


def _metrics_csv(epochs: int) -> str:
    """A metrics.csv as Lightning's CSV logger writes it: per-step rows (train/loss_step),
    then per epoch a validation row and a row with the epoch's train/loss."""
    head = "epoch,step,train/loss,train/loss_step,val/psnr/level_1,val/psnr/level_2,val/psnr/mean"
    lines = [head]
    for e in range(epochs):
        lines.append(f"{e},{2 * e},,0.5,,,")
        lines.append(f"{e},{2 * e + 1},,0.4,,,")
        lines.append(f"{e},{2 * e + 1},,,{20 + e},{18 + e},{19 + e}")
        lines.append(f"{e},{2 * e + 1},{0.3 - 0.1 * e},,,,")
    return "\n".join(lines) + "\n"


def _run(root: Path, name: str, overrides: list[str], doc: dict | None, epochs: int = 2,
         files: bool = True) -> Path:  # fmt: skip
    """A run folder: Hydra's files, results.json (``doc``; none for an unfinished run),
    and with ``files`` csv/metrics.csv, allocation.csv, a checkpoint and a validation sample
    grid per epoch."""
    d = root / name
    (d / ".hydra").mkdir(parents=True)
    (d / ".hydra" / "config.yaml").write_text("a: 1\n")
    (d / ".hydra" / "overrides.yaml").write_text("".join(f"- {o}\n" for o in overrides))
    if doc is not None:
        (d / "results.json").write_text(json.dumps(doc))
    if not files:
        return d
    (d / "csv").mkdir()
    (d / "csv" / "metrics.csv").write_text(_metrics_csv(epochs))
    alloc = ["epoch,weight_1,weight_2,images_1,images_2"]
    alloc += [f"{e},0.{e + 4}00000,0.{5 - e}00000,3,5" for e in range(epochs)]
    (d / "allocation.csv").write_text("\n".join(alloc) + "\n")
    (d / "checkpoints").mkdir()
    (d / "checkpoints" / f"epoch_{epochs - 1:03d}.ckpt").write_bytes(b"x")
    (d / "images").mkdir()
    for e in range(epochs):
        Image.new("RGB", (40, 30), (10 * e, 100, 200)).save(d / "images" / f"val_epoch_{e:04d}.png")
    return d


def _doc(task: str, protocol: str, levels: dict[int, dict], **fields) -> dict:
    return {"task": task, "protocol": protocol, "extra_level": max(levels),
            "levels": {str(lv): row for lv, row in levels.items()}, **fields}  # fmt: skip


def _sweep(root: Path) -> None:
    """Two inpainting runs (with a variant, another output, lpips and the input baseline),
    one deblurring run, and an inpainting run that did not finish."""
    for name, cur, l1, l2 in (("0", "ondemand", 31.234, 26.0), ("1", "staged", 29.0, 25.5)):
        levels = {
            1: _row(l1, ssim=0.81234, l1=0.03579, l2=0.001234, lpips=0.2468, input_psnr=25.5),
            2: _row(l2, input_psnr=20.25, lpips=0.5),
            3: _row(20.0, extra=True, input_psnr=15.0, lpips=0.75),
        }
        doc = _doc(
            "inpaint", "all channels", levels, seed=7, curriculum=cur,
            test_set={"checksum": f"cafe{name}" * 8},
            data={"source": {"kind": "embedded", "names": ["x" * 500]}, "crop_size": 32},
            variants={"centered": {"levels": {"1": _row(33.5), "2": _row(28.0)}}},
            outputs={"restored_known": {"default": {"levels": {"1": _row(34.125)}}}},
        )  # fmt: skip
        _run(root, name, ["experiment=x", f"curriculum={cur}"], doc)
    deblur = _doc("deblur", "Y channel", {1: _row(24.5), 2: _row(22.0, extra=True)}, seed=7)
    _run(root, "2", ["experiment=x", "curriculum=rigid_joint"], deblur)
    _run(root, "3", ["experiment=x", "curriculum=cumulative"], None, epochs=4)  # crashed


# ------------------------------------------------------------------ reading the page back


class Page(HTMLParser):
    """What the tests look at: every tag's attributes, the text, and the tables (rows of
    cell texts) with the group section they are in and their caption."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str]]] = []
        self.text: list[str] = []
        self.tables: list[dict] = []
        self._group: list[str | None] = []  # per open <section>: its task, if a group
        self._cell: list[str] | None = None
        self._in_caption = False
        self.feed(text)
        self.close()

    def handle_starttag(self, tag: str, attrs: list) -> None:
        a = {k: v or "" for k, v in attrs}
        self.tags.append((tag, a))
        if tag == "section":
            self._group.append(a.get("data-task") if "group" in a.get("class", "") else None)
        elif tag == "table":
            group = next((g for g in reversed(self._group) if g is not None), None)
            self.tables.append({"group": group, "caption": "", "rows": [], "attrs": a})
        elif tag == "tr":
            self.tables[-1]["rows"].append([])
        elif tag in ("td", "th"):
            self._cell = []
        elif tag == "caption":
            self._in_caption = True
        elif tag == "br" and self._cell is not None:
            self._cell.append(" ")

    def handle_endtag(self, tag: str) -> None:
        if tag == "section":
            self._group.pop()
        elif tag in ("td", "th") and self._cell is not None:
            self.tables[-1]["rows"][-1].append("".join(self._cell).strip())
            self._cell = None
        elif tag == "caption":
            self._in_caption = False

    def handle_data(self, data: str) -> None:
        self.text.append(data)
        if self._cell is not None:
            self._cell.append(data)
        if self._in_caption:
            self.tables[-1]["caption"] += data

    def table(self, group: str, caption: str) -> list[list[str]]:
        (found,) = [t for t in self.tables if t["group"] == group and t["caption"] == caption]
        return found["rows"]

    def groups(self) -> list[str]:
        return [a["data-task"] for t, a in self.tags if t == "section" and "group" in a.get("class", "")]  # fmt: skip


def _measure_rows(rows: list[list[str]]) -> dict[tuple[str, str], list[str]]:
    """``{(run, measure): cells}`` of a per-level table (the run cell spans its rows)."""
    out, run = {}, ""
    for row in rows[1:]:
        if len(row) == len(rows[0]):
            run, row = row[0], row[1:]
        out[(run, row[0])] = row[1:]
    return out


def _without_data_uris(text: str) -> str:
    return re.sub(r'src="data:image/png;base64,[A-Za-z0-9+/=]*"', 'src=""', text)


# ------------------------------------------------------------------ tests


@pytest.fixture(scope="module")
def sweep(tmp_path_factory) -> tuple[Path, str, str]:
    """The fabricated sweep's folder, what ``report --html`` printed, and the page."""
    import contextlib
    import io

    root = tmp_path_factory.mktemp("sweep")
    _sweep(root)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert main([str(root), "--html", "--title", "Sweep <1>"]) == 0
    return root, printed.getvalue(), (root / "report.html").read_text(encoding="utf-8")


def test_html_report_sections_numbers_and_incomplete_runs(sweep):
    tmp_path, out, text = sweep
    assert f"HTML report written to {tmp_path / 'report.html'}" in out
    assert (tmp_path / "summary.md").is_file()  # the Markdown summary is still written
    page = Page(text)
    assert "Sweep &lt;1&gt;" in text
    assert "3 complete, 1 incomplete" in "".join(page.text)
    # one section per (task, protocol) group, the inpainting runs apart from the deblurring one
    assert page.groups() == ["inpaint", "deblur"]
    inpaint = _measure_rows(page.table("inpaint", "test set"))
    assert {run for run, _ in inpaint} == {"ondemand", "staged"}
    # levels 1, 2, 3 (extra), then the mean over the training levels 1-2
    assert inpaint[("ondemand", "PSNR (dB)")] == ["31.23", "26.00", "20.00", "28.62"]
    assert inpaint[("ondemand", "SSIM")] == ["0.8123", "0.5000", "0.5000", "0.6562"]
    assert inpaint[("ondemand", "L1")][0] == "0.0358"
    assert inpaint[("ondemand", "L2")][0] == "0.00123"
    assert inpaint[("ondemand", "lpips")] == ["0.2468", "0.5000", "0.7500", "0.3734"]
    assert inpaint[("ondemand", "input PSNR (dB, no restoration)")][:2] == ["25.50", "20.25"]
    assert inpaint[("staged", "PSNR (dB)")][:2] == ["29.00", "25.50"]
    head = page.table("inpaint", "test set")[0]
    assert head[:2] == ["run", "measure"] and head[4] == "L3 (extra)" and head[-1] == "mean 1-2"
    deblur = _measure_rows(page.table("deblur", "test set"))
    assert {run for run, _ in deblur} == {"rigid_joint"}
    assert deblur[("rigid_joint", "PSNR (dB)")] == ["24.50", "22.00", "24.50"]
    assert "lpips" not in {m for _, m in deblur}  # only the measures the rows carry
    # no table mixes the tasks
    labels = {"inpaint": {"ondemand", "staged"}, "deblur": {"rigid_joint"}}
    for t in page.tables:
        if t["attrs"].get("class") == "levels":
            assert {run for run, _ in _measure_rows(t["rows"])} <= labels[t["group"]]
    # the test variant and the other scored output, in tables of their own
    centered = _measure_rows(page.table("inpaint", "test variant: centered"))
    assert centered[("ondemand", "PSNR (dB)")][:2] == ["33.50", "28.00"]
    known = _measure_rows(page.table("inpaint", "output restored_known, test set"))
    assert known[("ondemand", "PSNR (dB)")][0] == "34.12"  # 34.125 -> 2 decimals, half-even
    # per run: checksum, protocol, seed, overrides, data (bulky parts left out)
    body = "".join(page.text)
    assert "cafe0" * 8 in body and "cafe1" * 8 in body and "all channels" in body
    assert "curriculum=staged" in body and "source.kind: embedded" in body
    assert "x" * 100 not in body
    # the incomplete run, flagged with what it left
    (flagged,) = [a for t, a in page.tags if t == "section" and a.get("id") == "incomplete"]
    incomplete = body.split("Incomplete runs (1)")[1]
    assert "cumulative" in incomplete and str(tmp_path / "3") in incomplete
    assert "last checkpoint: epoch_003.ckpt" in incomplete
    assert "last epoch in metrics.csv: 3" in incomplete
    assert "val_epoch_0003.png" in incomplete
    assert flagged["class"] == "incomplete"
    assert all("cumulative" not in cell for t in page.tables for row in t["rows"] for cell in row)
    # figures: 2 PSNR-vs-level plots, 3 per complete run, 3 for the incomplete one
    imgs = [a["src"] for t, a in page.tags if t == "img"]
    assert len(imgs) == 2 + 3 * 3 + 3
    for src in imgs:
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1]).startswith(PNG)


def test_html_report_is_self_contained(sweep):
    _, _, text = sweep
    page = Page(text)
    assert not {t for t, _ in page.tags} & {"script", "link", "iframe", "object", "embed"}
    stripped = _without_data_uris(text)
    assert "http" not in stripped and "url(" not in stripped
    assert not re.search(r'src="(?!data:)', text)  # no file paths, no remote images
    hrefs = [a["href"] for t, a in page.tags if "href" in a]
    assert hrefs and all(h.startswith("#") for h in hrefs)  # links within the page only
    ids = {a["id"] for _, a in page.tags if "id" in a}
    assert {h[1:] for h in hrefs} <= ids


def test_html_report_escapes_labels(tmp_path):
    evil = "<script>alert(1)</script>"
    doc = _doc("inpaint & <b>", "p", {1: _row(30.0), 2: _row(20.0, extra=True)})
    _run(tmp_path, "0", ["experiment=x", f"+note={evil}"], doc)
    _run(tmp_path, "1", ["experiment=x", "+note=plain"], doc, files=False)
    text = html_report.html_report(find_runs([tmp_path]), evil, [tmp_path])
    assert "<script" not in text.lower()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert "inpaint & <b>" not in text and "inpaint &amp; &lt;b&gt;" in text
    page = Page(text)
    assert page.groups() == ["inpaint & <b>"]
    rows = _measure_rows(page.table("inpaint & <b>", "test set"))
    assert ("+note=" + evil, "PSNR (dB)") in rows  # the label reads back unchanged


def test_html_report_seeds_are_policies_with_mean_and_se(tmp_path):
    for i, (cur, seed, psnr) in enumerate(
        [("ondemand", 0, 30.0), ("ondemand", 1, 32.0), ("staged", 0, 27.0), ("staged", 1, 28.0)]
    ):
        doc = _doc("inpaint", "p", {1: _row(psnr), 2: _row(psnr - 5, extra=True)}, seed=seed,
                   test_set={"checksum": f"c{seed}"})  # fmt: skip
        _run(
            tmp_path,
            str(i),
            ["experiment=x", f"curriculum={cur}", f"seed={seed}"],
            doc,
            files=False,
        )
    page = Page(html_report.html_report(find_runs([tmp_path]), "t", [tmp_path]))
    rows = page.table("inpaint", "test set (mean ± SE over seeds)")
    assert rows[0][0] == "policy" and rows[0][-1] == "n"
    cells = _measure_rows(rows)
    # ondemand: seeds 30, 32 -> 31.00 ± 1.00 (SE = std / sqrt 2); n = 2
    assert cells[("ondemand", "PSNR (dB)")] == ["31.00 ± 1.00", "26.00 ± 1.00", "31.00 ± 1.00", "2"]
    assert cells[("staged", "PSNR (dB)")][0] == "27.50 ± 0.50"
    body = "".join(page.text)
    assert "Paired t-test" in body
    # each run still has its own section and table
    own = [t for t in page.tables if t["caption"] == "test set"]
    assert sorted(r[0] for t in own for r in t["rows"][1:2]) == [
        "ondemand,seed=0", "ondemand,seed=1", "staged,seed=0", "staged,seed=1"]  # fmt: skip


def test_cli_html_paths_and_errors(tmp_path, capsys):
    _run(
        tmp_path / "runs", "0", ["experiment=x"], _doc("deblur", "p", {1: _row(30.0)}), files=False
    )
    assert main([str(tmp_path / "runs")]) == 0  # without --html: no page
    assert not list(tmp_path.rglob("*.html"))
    target = tmp_path / "elsewhere" / "mine.html"
    assert main([str(tmp_path / "runs"), f"--html={target}"]) == 0
    assert target.is_file() and not (tmp_path / "runs" / "report.html").exists()
    folder = tmp_path / "folder"
    folder.mkdir()
    assert main([str(tmp_path / "runs"), "--out", str(tmp_path / "o"), "--html", str(folder)]) == 0
    assert (folder / "report.html").is_file()
    assert main([str(tmp_path / "runs"), "--out", str(tmp_path / "o"), "--html"]) == 0
    assert (tmp_path / "o" / "report.html").is_file()
    capsys.readouterr()
    (tmp_path / "empty").mkdir()
    assert main([str(tmp_path / "empty"), "--html"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("lightrestore.report: error: no runs found")
    assert not (tmp_path / "empty" / "report.html").exists()
    with pytest.raises(html_report.NoRunsError):
        html_report.write_html([tmp_path / "empty"], tmp_path / "x.html")


def test_training_curves_allocation_and_large_images(tmp_path):
    d = _run(tmp_path, "0", ["experiment=x"], None, epochs=3)
    rows = html_report.read_metrics(d)
    losses, val = html_report.training_curves(rows)
    # the epoch rows' train/loss, not the per-step values
    assert list(losses) == ["train/loss"]
    assert [e for e, _ in losses["train/loss"]] == [0, 1, 2]
    assert [v for _, v in losses["train/loss"]] == pytest.approx([0.3, 0.2, 0.1])
    assert list(val)[0] == "val/psnr/mean" and val["val/psnr/mean"] == [
        (0, 19.0),
        (1, 20.0),
        (2, 21.0),
    ]
    assert html_report.last_epoch(rows) == 2
    assert html_report.read_allocation(d)[1] == {"epoch": 1, "weights": [0.5, 0.4]}
    big = tmp_path / "big.png"
    Image.effect_noise((3000, 500), 64).convert("RGB").save(big)
    png, size = html_report.image_png(big)
    assert png.startswith(PNG) and max(size) <= html_report.MAX_IMAGE_SIDE
    assert len(png) < big.stat().st_size
    small = d / "images" / "val_epoch_0000.png"
    assert html_report.image_png(small) == (small.read_bytes(), (40, 30))  # kept as it is
    (tmp_path / "bad.png").write_bytes(b"not an image")
    assert html_report.image_png(tmp_path / "bad.png") is None
