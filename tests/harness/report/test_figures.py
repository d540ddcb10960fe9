"""Report figures: the plotted data equals the records, runs pair only when comparable, not-run figures say so.

The GenEval runs use the tiny random-weight DC-AR and its discrete-only baseline (as the smoke run
does) on two prompts; the reconstruction run uses the dummy tokenizer with a cheap feature extractor.
Every PNG is decoded and its size checked against the layout the figure reports.
"""
from __future__ import annotations

import io
import json
import math
import shutil
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from harness.io import bytes_sha256, file_sha256
from harness.jobs import aggregate, run
from harness.report.collect import collect_runs
from harness.runner.config import ConfigError
from tests.paths import REPO_ROOT

pytest.importorskip("matplotlib")

TINY = ["model.config=tiny", "model.random_init_seed=0", "samples_per_prompt=1"]
TWO_PROMPTS = [*TINY, "prompts=[0, 200]"]


def _png(path):
    with Image.open(path) as im:
        im.load()
        return im.size, np.asarray(im.convert("RGB"))


@pytest.fixture(scope="module")
def geneval_runs(tmp_path_factory):
    """DC-AR and its baseline on the same plan and seed, plus three runs that must not pair with them."""
    base = tmp_path_factory.mktemp("gen") / "runs"
    run("geneval", "dc-ar", base / "a-dc-ar", overrides=TWO_PROMPTS, show_progress=False)
    run("geneval", "dc-ar-discrete-only", base / "b-discrete", overrides=TWO_PROMPTS, show_progress=False)
    # same adapter and plan, another seed / another plan: nothing to pair with
    run("geneval", "dummy-t2i", base / "c-dummy-seed1", overrides=["prompts=[0, 200]", "samples_per_prompt=1",
                                                                   "model.resolution=32"], seed=1, show_progress=False)
    run("geneval", "dummy-t2i", base / "d-dummy-other-plan", overrides=["prompts=[0, 5]", "samples_per_prompt=1",
                                                                        "model.resolution=32"], show_progress=False)
    run("dummy", "dummy-t2i", base / "e-dummy-suite", overrides=["num_items=2", "model.resolution=8"],
        show_progress=False)
    return base


def test_fig9_grid_shows_exactly_the_records_of_both_adapters_in_plan_order(geneval_runs, tmp_path):
    from harness.report.figures import build_figures

    runs = collect_runs([geneval_runs])
    figures = {f.id: f for f in build_figures(runs, tmp_path / "rep")}
    grids = [f for f in figures.values() if f.id.startswith("fig9")]
    assert [f.id for f in grids] == ["fig9"]  # the dummy runs pair with nothing
    fig = grids[0]
    assert fig.status == "drawn" and fig.path == "figures/fig9.png"
    by_dir = {str(r.run_dir): r for r in runs}
    cols = fig.data["columns"]
    # the discrete-only baseline on the left, as in the paper's Fig. 9
    assert [c["adapter"] for c in cols] == ["dc-ar-discrete-only", "dc-ar"]
    for col in cols:
        r = by_dir[col["run"]]
        assert col["files"] == [rec["file"] for rec in r.records] == ["00000/samples/0000.png",
                                                                      "00200/samples/0000.png"]
        assert col["image_sha256"] == [rec["image_sha256"] for rec in r.records]
        assert col["seeds"] == [rec["seed"] for rec in r.records]
        assert col["real_weights"] is False
    assert cols[0]["seeds"] == cols[1]["seeds"]  # same plan + run seed = same noise per row
    plan = by_dir[cols[0]["run"]].items
    assert fig.data["prompt_indices"] == [0, 200]
    assert fig.data["prompts"] == [it.payload["prompt"] for it in plan]
    assert fig.data["problems"] == []
    assert "random or dummy weights" in fig.caption and "dc-ar-discrete-only vs dc-ar" in fig.caption
    size, _ = _png(tmp_path / "rep" / fig.path)
    assert list(size) == fig.data["size_px"]
    paired = {c["run"] for c in cols}
    assert not any(d in paired for d in (str(geneval_runs / "c-dummy-seed1"), str(geneval_runs / "d-dummy-other-plan")))
    json.dumps([f.to_dict() for f in figures.values()])  # every figure's data is JSON


def test_runs_that_do_not_pair_up_are_not_paired(geneval_runs, tmp_path):
    from harness.report.grids import geneval_pairs

    runs = collect_runs([geneval_runs / "a-dc-ar", geneval_runs / "c-dummy-seed1", geneval_runs / "d-dummy-other-plan"])
    assert geneval_pairs(runs) == []  # other seed, other plan
    one = collect_runs([geneval_runs / "a-dc-ar", geneval_runs / "a-dc-ar"])
    assert geneval_pairs(one) == []  # one adapter twice is no comparison
    from harness.report.figures import build_figures

    fig9 = [f for f in build_figures(runs, tmp_path) if f.id == "fig9"][0]
    assert fig9.path is None and fig9.status.startswith("not run: needs two geneval runs")


def test_a_modified_or_missing_image_is_marked_and_a_partial_run_shows_the_shared_prompts(geneval_runs, tmp_path):
    from harness.report.figures import build_figures

    base = tmp_path / "runs"
    shutil.copytree(geneval_runs / "a-dc-ar", base / "a")
    shutil.copytree(geneval_runs / "b-discrete", base / "b")
    png = base / "a" / "artifacts" / "geneval" / "00000" / "samples" / "0000.png"
    png.write_bytes(png.read_bytes()[:-10] + b"0123456789")
    (base / "b" / "artifacts" / "geneval" / "00200" / "samples" / "0000.png").unlink()
    fig = [f for f in build_figures(collect_runs([base]), tmp_path / "rep") if f.id == "fig9"][0]
    assert fig.status == "drawn" and len(fig.data["problems"]) == 2
    assert any("modified" in p for p in fig.data["problems"]) and any("missing" in p for p in fig.data["problems"])
    assert "2 image(s) are missing or modified" in fig.caption
    # a partial run (one shard of two): only the prompt both runs have is shown, and the caption says so
    run("geneval", "dc-ar", base / "p", overrides=TWO_PROMPTS, shard="0/2", show_progress=False)
    runs = collect_runs([base / "p", geneval_runs / "b-discrete"])
    fig = [f for f in build_figures(runs, tmp_path / "rep2") if f.id == "fig9"][0]
    assert fig.data["prompt_indices"] == [0] and fig.data["not_shown"]["missing_in_some_run"] == [200]
    assert "not yet generated by every model" in fig.caption
    assert [c["completeness"] for c in fig.data["columns"]] == ["complete", "partial: 1 of 2 items"]


# --------------------------------------------------------------------------- reconstruction examples


def _tensor(hwc):
    import torch

    return torch.from_numpy(np.array(hwc)).permute(2, 0, 1)[None]


@pytest.fixture
def recon_run(tmp_path, monkeypatch):
    import harness.metrics.inception as inception
    from tests.suites.test_imagenet_recon import FAST, TinyExtractor

    monkeypatch.setattr(inception, "InceptionFeatureExtractor", TinyExtractor)

    def make(name, examples):
        over = {**FAST, "dataset.kind": "skimage_samples", "dataset.limit": 3, "dataset.resolution": 64,
                "metrics.frechet": "eigh", "report.examples": examples}
        return run("imagenet_recon", "dummy-tokenizer", tmp_path / name, overrides=over, show_progress=False,
                   batch_size=2)

    return make


def test_recon_examples_are_saved_for_the_first_items_only_and_change_nothing_else(recon_run, tmp_path):
    from harness.images import to_float
    from harness.metrics.recon import psnr_per_image

    with_ex = collect_runs([recon_run("ex", 2).run_dir])[0]
    without = collect_runs([recon_run("none", 0).run_dir])[0]
    assert not (without.run_dir / "artifacts" / "examples").exists()
    assert all("examples" not in r for r in without.records)
    for a, b in zip(with_ex.records, without.records):
        assert {k: v for k, v in a.items() if k != "examples"} == b  # same metrics, features, seeds
    assert [("examples" in r) for r in with_ex.records] == [True, True, False]
    for rec in with_ex.records[:2]:
        ex = rec["examples"]
        assert sorted(ex) == ["continuous", "discrete", "input"]
        for entry in ex.values():
            assert entry["file"].startswith(f"examples/{rec['item_id']}/")
            assert file_sha256(with_ex.artifact(entry["file"])) == entry["sha256"]
        # the PNGs hold exactly the uint8 pixels the metrics saw
        _, crop = _png(with_ex.artifact(ex["input"]["file"]))
        assert bytes_sha256(np.ascontiguousarray(crop).tobytes()) == rec["input_sha256"]
        for path in ("continuous", "discrete"):
            _, recon = _png(with_ex.artifact(ex[path]["file"]))
            psnr = float(psnr_per_image(_tensor(crop), to_float(_tensor(recon)))[0])
            assert psnr == pytest.approx(rec["psnr"][path], abs=1e-9)


def test_report_examples_is_not_an_aggregate_key(recon_run):
    res = recon_run("r", 1)
    with pytest.raises(ConfigError, match="changes records"):
        aggregate(res.run_dir, overrides={"report.examples": 0})
    assert aggregate(res.run_dir, overrides={"report.tokens": 64})["results"]["report"]["tokens"] == 64
    with pytest.raises(ValueError, match="report.examples must be >= 0"):
        recon_run("neg", -1)


def test_recon_grid_uses_the_saved_examples(recon_run, tmp_path):
    from harness.report.figures import build_figures

    r = collect_runs([recon_run("ex", 2).run_dir])
    figures = {f.id: f for f in build_figures(r, tmp_path / "rep")}
    fig = figures["recon_grid"]
    assert fig.status == "drawn" and fig.path == "figures/recon_grid.png"
    recs = r[0].records[:2]
    assert fig.data["columns"] == ["input", "continuous", "discrete"]
    assert [row["item_id"] for row in fig.data["rows"]] == ["skimage/astronaut", "skimage/coffee"]
    assert fig.data["files"] == [rec["examples"][c]["file"] for rec in recs for c in fig.data["columns"]]
    assert [row["psnr"] for row in fig.data["rows"]] == [rec["psnr"] for rec in recs]
    assert "random or dummy weights" in fig.caption and "NOT ImageNet" in fig.caption
    size, _ = _png(tmp_path / "rep" / fig.path)
    assert list(size) == fig.data["size_px"]
    # a run without examples has no grid
    none = {f.id: f for f in build_figures(collect_runs([recon_run("none", 0).run_dir]), tmp_path / "rep2")}
    assert none["recon_grid"].status.startswith("not run: needs an imagenet_recon run that saved example images")


# --------------------------------------------------------------------------- not run; files only


def test_figures_that_no_run_fills_say_so(tmp_path):
    from harness.report.figures import build_figures

    run("dummy", "dummy-t2i", tmp_path / "runs" / "d", overrides=["num_items=2", "model.resolution=8"],
        show_progress=False)
    figures = build_figures(collect_runs([tmp_path / "runs"]), tmp_path / "rep")
    assert [f.id for f in figures] == ["fig6", "fig9", "fig10", "fig11", "recon_grid"]
    for f in figures:
        assert f.path is None and f.status.startswith("not run: needs ") and f.caption and f.data == {}
    by_id = {f.id: f for f in figures}
    assert "steps_sweep" in by_id["fig6"].status and "train_efficiency" in by_id["fig10"].status
    assert "MAR" in by_id["fig11"].status
    assert not (tmp_path / "rep" / "figures").exists()


def test_figures_build_from_files_only_without_torch_datasets_or_weights(geneval_runs, recon_run, tmp_path):
    """A report built elsewhere: runs moved, no dataset, no weights; building figures imports no torch at all."""
    moved = tmp_path / "moved"
    shutil.copytree(geneval_runs / "a-dc-ar", moved / "a")
    shutil.copytree(geneval_runs / "b-discrete", moved / "b")
    shutil.copytree(recon_run("ex", 1).run_dir, moved / "r")
    code = (
        "import sys, json\n"
        "from harness.report.collect import collect_runs\n"
        "from harness.report.figures import build_figures\n"
        f"figs = build_figures(collect_runs([{str(moved)!r}]), {str(tmp_path / 'rep')!r})\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'baselines', 'suites', 'transformers'))\n"
        "print(json.dumps({'drawn': [f.id for f in figs if f.path], 'bad': bad}))\n"
    )
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path / "home"), "HF_HOME": str(tmp_path / "nohf"),
           "DCAR_BENCH_CACHE": str(tmp_path / "nocache"), "PYTHONPATH": str(REPO_ROOT)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=tmp_path,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result == {"drawn": ["fig9", "recon_grid"], "bad": []}


# --------------------------------------------------------------------------- line plots on synthetic series


def _check_line_png(fig, out_dir):
    size, pixels = _png(out_dir / fig.path)
    assert list(size) == fig.data["size_px"] == [840, 528]
    assert pixels.std() > 0  # something was drawn


def test_gfid_vs_steps_plots_the_given_series_and_marks_the_papers_12_steps(tmp_path):
    from harness.report.figures import Series, plot_gfid_vs_steps

    ours = Series("dc-ar", [4, 8, 12, 16], [9.0, 6.5, 5.6, 5.7], real_weights=False)
    base = Series("dc-ar-discrete-only", [4, 8, 12, 16], [11.0, 8.0, 7.3, 7.2], real_weights=True)
    paper = Series("dc-ar", [12], [5.49], is_paper=True)
    fig = plot_gfid_vs_steps([ours, base, paper], tmp_path)
    assert fig.id == "fig6" and fig.status == "drawn" and fig.path == "figures/fig6.png"
    got = fig.data["series"]
    assert [(s["label"], s["x"], s["y"], s["is_paper"]) for s in got] == [
        ("dc-ar", [4.0, 8.0, 12.0, 16.0], [9.0, 6.5, 5.6, 5.7], False),
        ("dc-ar-discrete-only", [4.0, 8.0, 12.0, 16.0], [11.0, 8.0, 7.3, 7.2], False),
        ("dc-ar", [12.0], [5.49], True)]
    assert [(f["model"], f["value"]) for f in fig.data["paper_facts"]] == [("DC-AR", 12.0)]
    assert "Fig. 6" in fig.data["paper_facts"][0]["source"]
    assert "DC-AR is best at 12 steps" in fig.caption and "some runs with random" in fig.caption
    _check_line_png(fig, tmp_path)


def test_mar_steps_and_training_loss_plots(tmp_path):
    from harness.report.figures import Series, plot_mar_steps, plot_training_loss

    mar = plot_mar_steps([Series("mar-b", [8, 16, 32, 64, 128], [6.1, 3.4, 2.6, 2.3, 2.35], real_weights=True)],
                         tmp_path)
    assert mar.id == "fig11" and mar.data["series"][0]["y"] == [6.1, 3.4, 2.6, 2.3, 2.35]
    assert sorted(f["value"] for f in mar.data["paper_facts"]) == [12.0, 64.0]
    assert "real weights" in mar.caption
    _check_line_png(mar, tmp_path)
    steps = list(range(0, 40001, 500))
    ft = Series("fine-tune from 256", steps, [2 + 3 * math.exp(-s / 3000) for s in steps], real_weights=False)
    sc = Series("from scratch", steps, [2 + 6 * math.exp(-s / 9000) for s in steps], real_weights=False)
    loss = plot_training_loss([ft, sc], tmp_path)
    assert loss.id == "fig10" and [s["label"] for s in loss.data["series"]] == ["fine-tune from 256", "from scratch"]
    assert loss.data["series"][1]["y"] == pytest.approx(list(sc.y))
    assert loss.data["paper_facts"][0]["value"] == 30000.0 and "first 30K" in loss.caption
    _check_line_png(loss, tmp_path)
    with pytest.raises(ValueError, match="2 x values but 1 y values"):
        Series("bad", [1, 2], [3])
    with pytest.raises(ValueError, match="non-finite"):
        Series("bad", [1], [float("nan")])


def test_series_from_run_summaries_are_merged_by_label_and_drawn_by_build_figures(tmp_path):
    """A sweep stores one point per run in its summary; the points of a label join into one line in x order."""
    from harness.report.figures import build_figures, series_from_runs

    def fake(steps, gfid, real=True):
        return SimpleNamespace(suite="steps_sweep", real_weights=real, records=[], items=[],
                               results={"figure_series": {"fig6": [{"label": "dc-ar", "x": [steps], "y": [gfid]}]}})

    runs = [fake(12, 5.6), fake(4, 9.0), fake(8, 6.5, real=False)]
    (series,) = series_from_runs(runs, "fig6")
    assert (series.label, list(series.x), list(series.y), series.real_weights) == \
        ("dc-ar", [4.0, 8.0, 12.0], [9.0, 6.5, 5.6], False)
    figs = {f.id: f for f in build_figures(runs, tmp_path)}
    assert figs["fig6"].status == "drawn" and figs["fig6"].data["series"][0]["y"] == [9.0, 6.5, 5.6]
    assert figs["fig10"].path is None


def test_figure_reference_rows_name_their_source():
    from harness.report.plotting import figure_facts

    facts = figure_facts()
    assert {(f.figure, f.model, f.value) for f in facts} >= {("fig6", "DC-AR", 12.0), ("fig11", "MAR-B", 64.0)}
    assert all(f.source.startswith("DC-AR paper ") for f in facts)


def test_same_data_gives_the_same_png_bytes(tmp_path):
    from harness.report.figures import Series, plot_gfid_vs_steps

    s = [Series("dc-ar", [4, 12], [7.0, 5.0])]
    a = (tmp_path / "a" / plot_gfid_vs_steps(s, tmp_path / "a").path).read_bytes()
    b = (tmp_path / "b" / plot_gfid_vs_steps(s, tmp_path / "b").path).read_bytes()
    assert a == b and Image.open(io.BytesIO(a)).format == "PNG"
