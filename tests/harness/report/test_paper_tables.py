"""The paper's Tables 1-6 from run directories: paper cells equal the shipped CSV, ours equal the summaries,
not-run cells say so, partial runs say so with counts, random-weight cells carry the legend's marker, and
the CSV/JSON written are the table's frame. Built from run directories written without models, plus one
real ``imagenet_recon`` run whose dataset is deleted before the tables are built.
"""
from __future__ import annotations

import csv
import io
import json
import shutil
import subprocess
import sys
from importlib import resources

import numpy as np
import pytest
from PIL import Image

from harness.report.collect import collect_runs
from harness.report.paper_tables import MARK, NOT_RUN, SPECS, build_paper_tables
from tests.harness.report.synthetic_runs import H200, geneval_results, recon_results, write_run
from tests.paths import REPO_ROOT
from tests.stand_ins import TinyExtractor

pytest.importorskip("pandas")

REAL_256 = {"rFID": 1.6349, "PSNR": 21.4321, "SSIM": 0.56789, "LPIPS": 0.22345}
REAL_256_DISCRETE = {"rFID": 5.2468, "PSNR": 19.1, "SSIM": 0.5, "LPIPS": 0.3}


def _csv_rows() -> list[dict[str, str]]:
    text = resources.files("harness.report").joinpath("data/reference_numbers.csv").read_text(encoding="utf-8")
    return list(csv.DictReader(io.StringIO(text)))


def _md_rows(md: str) -> list[list[str]]:
    lines = md.strip().splitlines()
    return [[c.strip() for c in line.strip().strip("|").split(" | ")] for line in lines[2:]]


def _tables(paths) -> dict:
    return {t.id: t for t in build_paper_tables(collect_runs(paths))}


def _spec(table_id):
    return next(s for s in SPECS if s.id == table_id)


def _row(table, model: str, source: str) -> dict[str, str]:
    """The row of ``model`` whose Source starts with ``source`` ("paper", "ours", "Δ"), as {column: cell}."""
    name = _spec(table.id).name_header
    rows = [r for r in table.to_records() if r[name].rstrip("*") == model and r["Source"].startswith(source)]
    assert len(rows) == 1, (model, source, rows)
    return rows[0]


def test_all_six_tables_in_the_papers_order_with_the_csv_values_and_not_run_without_runs(tmp_path):
    tables = build_paper_tables([])
    assert [t.id for t in tables] == [f"table{i}" for i in range(1, 7)]
    csv_rows = [r for r in _csv_rows() if r["table"].startswith(tuple(f"Table{i}_" for i in range(1, 7)))]
    for t in tables:
        spec = _spec(t.id)
        by_section = {s: label for s, label in spec.sections}
        mine = [r for r in csv_rows if r["table"] in by_section]
        # rows: the paper's models in the CSV's (= the paper's) order
        models = list(dict.fromkeys((r["table"], r["model"]) for r in mine))
        paper = [r for r in t.to_records() if r["Source"] == "paper"]
        assert [r[spec.name_header].rstrip("*") for r in paper] == [m for _, m in models]
        # every number of the paper's table is a cell of ours, exactly as the CSV writes it
        headers = dict(spec.descriptors + spec.metrics)
        for r in mine:
            if r["metric"] == "note":
                continue
            row = paper[models.index((r["table"], r["model"]))]
            assert row[headers[r["metric"]]] == r["value"], (t.id, r)
        # with no run, each row we could fill says "not run" in every measured cell, never blank
        ours = [r for r in t.to_records() if r["Source"].startswith("ours")]
        assert len(ours) == len(spec.fills) and ours
        for r in ours:
            assert {r[h] for _, h in spec.metrics} == {NOT_RUN}
        assert not [r for r in t.to_records() if r["Source"].startswith("Δ")]
        assert all(cell.strip() for r in t.to_records() for cell in r.values())
        assert any(NOT_RUN in line for line in t.legend)
        assert t.footer == []
    md = tables[0].to_markdown()
    assert "| 256×256 | DC-HT (64 tokens) | 2D-Hybrid | ✓ | 64 | paper | 1.60 | 21.50 | 0.5676 | 0.2221 |" in md
    assert "TexTok (64 tokens)*" in md and any("training set" in line for line in tables[0].legend)
    t2 = tables[1]
    assert _row(t2, "SDXL", "paper")["Latency (s)"] == "1.4*"
    assert _row(t2, "Sana-0.6B", "paper")["Latency ÷ DC-AR's"] == "2.0×"  # the paper's "2.0-3.5x lower latency"
    assert _row(t2, "Show-o", "paper")["DC-AR's throughput ÷ this"] == "7.9×"  # "... 1.5-7.9x higher throughput"
    legends = {t.id: " ".join(t.legend) for t in tables}
    assert "`mjhq_fid`" in legends["table2"] and "`profile`" in legends["table2"]
    assert "`train_efficiency`" in legends["table6"] and "`mjhq_fid`" in legends["table4"]


def test_recon_runs_fill_tables_1_4_5_with_their_summary_values_and_provenance(tmp_path):
    write_run(tmp_path, "r256", suite="imagenet_recon", adapter="dc-ht", device=H200, dtype="bfloat16",
              results=recon_results(256, REAL_256, REAL_256_DISCRETE, num_images=50000), num_items=6)
    write_run(tmp_path, "r512", suite="imagenet_recon", adapter="dc-ht",
              results=recon_results(512, {"rFID": 0.9, "PSNR": 23.0, "SSIM": 0.6, "LPIPS": 0.2}, {"rFID": 4.0}))
    tables = _tables([tmp_path])
    t1 = tables["table1"]
    md = t1.to_markdown()
    ours = _row(t1, "DC-HT (64 tokens)", "ours")
    assert ours["Source"] == "ours #1"
    assert [ours[h] for h in ("rFID↓", "PSNR↑", "SSIM↑", "LPIPS↓")] == ["1.63", "21.43", "0.5679", "0.2235"]
    delta = _row(t1, "DC-HT (64 tokens)", "Δ")
    assert [delta[h] for h in ("rFID↓", "PSNR↑", "SSIM↑", "LPIPS↓")] == ["+0.03", "-0.07", "+0.0003", "+0.0014"]
    assert _row(t1, "DC-HT (256 tokens)", "ours")["rFID↓"] == "0.90"
    assert MARK not in md and "partial" not in md
    # the same numbers in the Markdown and the frame
    assert "| 256×256 | DC-HT (64 tokens) | – | – | – | ours #1 | 1.63 | 21.43 | 0.5679 | 0.2235 |" in md
    # Table 4: continuous rFID for DC-AR, discrete rFID for the discrete-only variant; Table 5: both
    t4, t5 = tables["table4"], tables["table5"]
    assert _row(t4, "DC-AR (hybrid tokens)", "ours")["rFID↓"] == "1.63"
    assert _row(t4, "Discrete-only variant", "ours")["rFID↓"] == "5.25"
    assert _row(t4, "DC-AR (hybrid tokens)", "ours")["gFID↓"] == NOT_RUN
    assert _row(t4, "DC-AR (hybrid tokens)", "ours")["GenEval↑"] == NOT_RUN
    t5_ours = _row(t5, "Three-stage adaptation (DC-HT)", "ours")
    assert (t5_ours["Discrete-rFID↓"], t5_ours["rFID↓"]) == ("5.25", "1.63")
    assert _row(t5, "Three-stage adaptation (DC-HT)", "Δ")["rFID↓"] == "+0.03"
    # full precision for post-processing
    v = next(x for x in t1.values if x["model"] == "DC-HT (64 tokens)" and x["metric"] == "SSIM")
    assert v["ours"] == REAL_256["SSIM"] and v["paper"] == 0.5676 and v["diff"] == pytest.approx(0.56789 - 0.5676)
    assert v["status"] == "complete" and v["run"] == "r256" and v["not_paper_metric"] is False
    # the footer: one line per run used, with device, dtype, commit, torch, weights and sample counts
    assert len(t1.footer) == 2
    line = t1.footer[0]
    for part in ("#1 `r256`", "NVIDIA H200", "bfloat16", "0123456789ab", "torch 2.14.1", "sha256:abababababab",
                 "inception=sha256:efefefefefef", "50000 images evaluated (6 of 6 items)", "256 px",
                 "bilinear_pytorch"):
        assert part in line, part
    assert len(tables["table5"].footer) == 1  # the 512 run fills no Table 5 cell


def test_random_weight_cells_carry_the_marker_and_the_legend_says_why(tmp_path):
    warn = ["dataset: scikit-image sample pictures (NOT ImageNet; smoke test only)",
            "tokenizer weights are random/dummy: numbers are NOT the paper's metric"]
    write_run(tmp_path, "smoke", suite="imagenet_recon", adapter="dc-ht", real_weights=False,
              config={"model": {"config": "tiny"}},
              results=recon_results(256, REAL_256, REAL_256_DISCRETE, paper_metric=False, warnings=warn))
    t1 = _tables([tmp_path])["table1"]
    ours = _row(t1, "DC-HT (64 tokens)", "ours")
    assert ours["rFID↓"] == "1.63" + MARK and ours["LPIPS↓"] == "0.2235" + MARK
    assert _row(t1, "DC-HT (64 tokens)", "Δ")["rFID↓"] == "+0.03" + MARK
    legend = "\n".join(t1.legend)
    assert f"{MARK} not the paper's metric" in legend
    line = next(x for x in t1.legend if x.startswith(f"{MARK} #1:"))
    assert all(w in line for w in warn) and "`tiny` model config" in line
    assert all(x["not_paper_metric"] for x in t1.values if x["ref"] == "#1")


def test_partial_runs_are_reported_as_partial_with_counts_not_averaged_silently(tmp_path):
    from harness.geneval.rules import Expected

    # a GenEval detect run scored with allow_partial: 6 of the 2212 images, all in one tag
    write_run(tmp_path, "a-geneval", suite="geneval_detect", adapter=None, num_items=6,
              results=geneval_results("dc-ar", {"single_object": (3, 6)}),
              protocol={"images_folder": {"generator": {"name": "dc-ar"}}})
    # a reconstruction run killed after 2 of its 4 items: no summary, so no number at all
    write_run(tmp_path, "b-recon", suite="imagenet_recon", adapter="dc-ht", results=None, recorded=2,
              config={"dataset": {"resolution": 256}, "paths": "auto"},
              extra={"paths": ["continuous", "discrete"]})
    tables = _tables([tmp_path])
    t3 = tables["table3"]
    total = Expected().total_images
    ours = _row(t3, "DC-AR", "ours")
    assert ours["S. Obj"] == f"0.50 (partial: 6 of {total} images)"
    assert ours["T. Obj"].startswith("no images of this tag (partial: 6 of")
    assert ours["Overall"].startswith("no overall")
    assert _row(t3, "DC-AR", "Δ")["S. Obj"] == "-0.50 (partial)"
    assert any(line.startswith("partial: k of n") for line in t3.legend)
    assert MARK not in ours["S. Obj"]  # incomplete is said as partial, not as a random-weight marker
    assert any(f"partial: 6 of {total} images scored" in line and f"of {total} GenEval images" in line
               for line in t3.footer)
    t1 = tables["table1"]
    cell = _row(t1, "DC-HT (64 tokens)", "ours")["rFID↓"]
    assert cell == "not aggregated (partial: 2 of 4 items)"
    assert [x["ours"] for x in t1.values if x["ref"] == "#2"] == [None] * 4
    assert "`b-recon`" in t1.footer[0] and "partial: 2 of 4 items" in t1.footer[0]
    t4 = tables["table4"]
    assert _row(t4, "DC-AR (hybrid tokens)", "ours")["GenEval↑"].startswith("no overall")
    assert _row(t4, "DC-AR (hybrid tokens)", "ours")["rFID↓"] == "not aggregated (partial: 2 of 4 items) [#2]"


def test_complete_geneval_fills_tables_3_and_4_and_random_detector_is_marked(tmp_path):
    from harness.geneval.rules import Expected

    counts = {t: (n // 2, n) for t, n in Expected().images_per_tag.items()}
    write_run(tmp_path, "g1", suite="geneval_detect", adapter=None, results=geneval_results("dc-ar", counts))
    write_run(tmp_path, "g2", suite="geneval_detect", adapter=None,
              results=geneval_results("dc-ar-discrete-only", counts, real=False))
    tables = _tables([tmp_path])
    t3 = tables["table3"]
    ours = _row(t3, "DC-AR", "ours")
    assert ours["Source"] == "ours #1"
    assert [ours[h] for h in ("S. Obj", "Count", "Overall")] == ["0.50", "0.50", "0.50"]
    assert _row(t3, "DC-AR", "Δ")["Overall"] == "-0.19"
    t4 = tables["table4"]
    dcar = _row(t4, "DC-AR (hybrid tokens)", "ours")
    assert (dcar["Source"], dcar["GenEval↑"], dcar["rFID↓"]) == ("ours #1", "0.50", NOT_RUN)
    disc = _row(t4, "Discrete-only variant", "ours")
    assert (disc["Source"], disc["GenEval↑"]) == ("ours #2", "0.50" + MARK)
    assert any(line.startswith(f"{MARK} #2:") and "random weights for detector" in line for line in t4.legend)


def test_the_most_trustworthy_run_is_shown_and_the_others_are_listed(tmp_path):
    write_run(tmp_path, "a-smoke", suite="imagenet_recon", adapter="dc-ht", real_weights=False,
              results=recon_results(256, {"rFID": 17.6, "PSNR": 9.9, "SSIM": 0.02, "LPIPS": 0.22}, paper_metric=False,
                                    warnings=["tokenizer weights are random/dummy"]))
    write_run(tmp_path, "b-real", suite="imagenet_recon", adapter="dc-ht", results=recon_results(256, REAL_256))
    write_run(tmp_path, "c-ae", suite="imagenet_recon", adapter="dc-ae", results=recon_results(256, {"rFID": 0.1}))
    t1 = _tables([tmp_path])["table1"]
    assert _row(t1, "DC-HT (64 tokens)", "ours")["Source"] == "ours #2"
    hidden = next(line for line in t1.legend if line.startswith("Also measured by #1"))
    assert "DC-HT (64 tokens) rFID: 17.60" + MARK in hidden
    assert [line.split("`")[1] for line in t1.footer] == ["a-smoke", "b-real"]  # dc-ae is no Table 1 row


def test_unscored_images_and_unread_suites_are_named_but_the_cell_says_not_run(tmp_path):
    write_run(tmp_path, "gen", suite="geneval", adapter="dc-ar", results={"num_images": 12, "expected_images": 2212})
    write_run(tmp_path, "mjhq", suite="mjhq_fid", adapter="dc-ar", results={"gFID": 5.5})
    tables = _tables([tmp_path])
    assert _row(tables["table3"], "DC-AR", "ours")["Overall"] == NOT_RUN
    assert any("Generated but not scored here: #1 `gen`" in line for line in tables["table3"].legend)
    # an mjhq_fid run whose summary lacks fid.sana: the cell says so instead of a number
    assert _row(tables["table2"], "DC-AR", "ours")["gFID↓"] == "no sana gFID in its summary"


def test_written_csv_and_json_equal_the_frame(tmp_path):
    import pandas as pd

    write_run(tmp_path / "runs", "r256", suite="imagenet_recon", adapter="dc-ht",
              results=recon_results(256, REAL_256, REAL_256_DISCRETE))
    for t in build_paper_tables(collect_runs([tmp_path / "runs"])):
        paths = t.write(tmp_path / "report")
        assert [p.name for p in paths] == [f"{t.id}.csv", f"{t.id}.json"]
        back = pd.read_csv(paths[0], dtype=str, keep_default_na=False)
        assert back.columns.tolist() == t.columns
        assert back.values.tolist() == t.frame.values.tolist()
        data = json.loads(paths[1].read_text(encoding="utf-8"))
        assert data["rows"] == t.to_records() == back.to_dict("records")
        assert data["columns"] == t.columns and data["legend"] == t.legend and data["footer"] == t.footer
        assert data["values"] == json.loads(json.dumps(t.values))
        assert t.to_markdown().count("\n") == len(t.frame) + 2
    assert not list((tmp_path / "report" / "tables").glob(".*.tmp"))


def test_tables_from_a_real_run_build_with_dataset_artifacts_weights_and_torch_absent(tmp_path, monkeypatch):
    import harness.metrics.inception as inception
    from harness.jobs import run

    monkeypatch.setattr(inception, "InceptionFeatureExtractor", TinyExtractor)
    root = tmp_path / "val"
    rng = np.random.default_rng(0)
    for i in range(4):
        (root / f"n0000000{i % 2}").mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (300, 280 + 8 * i, 3), dtype=np.uint8)).save(
            root / f"n0000000{i % 2}" / f"img_{i}.JPEG")
    over = {"dataset.root": str(root), "dataset.resolution": 256, "model.config": "tiny", "model.random_init_seed": 0,
            "metrics.lpips.random_backbone_seed": 0, "metrics.inception.random_init_seed": 0}
    res = run("imagenet_recon", "dc-ht", tmp_path / "runs" / "recon", overrides=over, show_progress=False,
              batch_size=4)
    paths = res.summary["results"]["paths"]
    shutil.rmtree(root)
    shutil.rmtree(tmp_path / "runs" / "recon" / "artifacts")
    # a fresh interpreter in which torch cannot be imported: the tables need files only
    script = (
        "import json, sys\n"
        "sys.modules['torch'] = None\n"
        "from harness.report.collect import collect_runs\n"
        "from harness.report.paper_tables import build_paper_tables\n"
        f"tables = build_paper_tables(collect_runs([{str(tmp_path / 'runs')!r}]))\n"
        f"for t in tables: t.write({str(tmp_path / 'report')!r})\n"
        "print(json.dumps({t.id: t.to_markdown() for t in tables}))\n"
    )
    out = subprocess.run([sys.executable, "-c", script], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    md = json.loads(out.stdout)
    rows = {tuple(r[:2]) + (r[5],): r for r in _md_rows(md["table1"])}
    ours = rows[("256×256", "DC-HT (64 tokens)", "ours #1")]
    c = paths["continuous"]
    assert ours[6:10] == [f"{c['rFID']:.2f}{MARK}", f"{c['PSNR']:.2f}{MARK}", f"{c['SSIM']:.4f}{MARK}",
                          f"{c['LPIPS']:.4f}{MARK}"]
    t5 = {r[1]: r for r in _md_rows(md["table5"]) if r[1].startswith("ours")}
    assert t5["ours #1"][2:] == [f"{paths['discrete']['rFID']:.2f}{MARK}", f"{c['rFID']:.2f}{MARK}"]
    assert (tmp_path / "report" / "tables" / "table1.csv").is_file()


def test_a_damaged_run_gives_no_number_and_the_legend_says_why(tmp_path):
    run_dir = write_run(tmp_path, "broken", suite="imagenet_recon", adapter="dc-ht",
                        results=recon_results(512, {"rFID": 0.9, "PSNR": 23.0, "SSIM": 0.6, "LPIPS": 0.2}))
    shard = next((run_dir / "records").glob("shard-*.jsonl"))
    shard.write_bytes(shard.read_bytes() + b"not a record\n")
    t1 = _tables([tmp_path])["table1"]
    assert set(_row(t1, "DC-HT (256 tokens)", "ours").values()) >= {"damaged"}
    assert "0.90" not in t1.to_markdown()
    assert any(line.startswith("#1 is damaged: records are corrupt") for line in t1.legend)
