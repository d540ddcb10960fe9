"""Paper-shaped tables put the paper's numbers beside ours and label non-paper rows."""
from __future__ import annotations

from harness.report.tables import golden_check, imagenet_recon_section, rfid_table_markdown, table1_markdown


def _rows(md: str) -> list[list[str]]:
    return [[c.strip() for c in line.strip("|").split("|")] for line in md.strip().splitlines()[2:]]


def test_table1_has_paper_rows_then_ours():
    md = table1_markdown(256, [{"label": "ours [continuous]", "tokens": 64, "rFID": 1.234, "PSNR": 21.0,
                                "SSIM": 0.5, "LPIPS": 0.25, "note": "NOT the paper's metric"}])
    rows = _rows(md)
    by_name = {r[0]: r for r in rows}
    assert by_name["DC-HT (64 tokens)"][1:7] == ["64", "1.60", "21.50", "0.5676", "0.2221", "paper"]
    assert by_name["TA-TiTok (VQ, 64 tokens)"][3:6] == ["–", "–", "–"]  # missing cells stay missing
    assert rows[-1][0] == "**ours [continuous]** (NOT the paper's metric)"
    assert rows[-1][1:] == ["64", "1.23", "21.00", "0.5000", "0.2500", "this run"]
    assert "DC-HT (256 tokens)" in table1_markdown(512, [])


def test_table5_rfid_columns_and_golden_check():
    md = rfid_table_markdown("Table5_tokenizer_training", {"ours": {"discrete_rFID": 5.2, "rFID": 1.7}})
    rows = _rows(md)
    assert rows[-1] == ["**ours**", "5.20", "1.70", "this run"]
    assert ["Three-stage adaptation (DC-HT)", "5.13", "1.60", "paper"] in rows
    md4 = rfid_table_markdown("Table4_ablation_hybrid", {"ours": {"rFID": 2.0}}, metrics=("rFID",))
    assert ["Discrete-only variant", "5.13", "paper"] in _rows(md4)
    ok = golden_check("dc-ae-f64c128-in-1.0", {"rFID": 0.2200, "PSNR": 26.14, "SSIM": 0.7105, "LPIPS": 0.0900})
    assert [(m, passed) for m, _, _, passed in ok] == [("rFID", True), ("PSNR", True), ("SSIM", True),
                                                       ("LPIPS", False)]


def test_section_labels_runs_that_are_not_the_papers_metric():
    summary = {
        "dataset": {"resolution": 256, "label": "ImageNet val 256x256"}, "num_images": 10, "num_skipped": 1,
        "paths": {"continuous": {"rFID": 1.0, "PSNR": 20.0, "SSIM": 0.5, "LPIPS": 0.3},
                  "discrete": {"rFID": 5.0, "PSNR": 18.0, "SSIM": 0.4, "LPIPS": 0.4}},
        "reference_stats": {"source": "cache", "n": 10}, "weights": {"inception": "sha256:abc"},
        "fid_protocol": {"resize": "bilinear_pytorch"}, "ssim": {"params": {"border": "full"}},
        "is_paper_metric": False, "warnings": ["tokenizer weights are random/dummy"],
        "report": {"model_label": "DC-HT", "tokens": 64, "golden": None},
    }
    text = imagenet_recon_section(summary)
    assert "1 skipped as corrupt" in text and "⚠ tokenizer weights are random/dummy" in text
    assert "**DC-HT [continuous]** (NOT the paper's metric)" in text and "21.50" in text
    assert "| **DC-HT (NOT the paper's metric)** | 5.00 | 1.00 | this run |" in text
    real = {**summary, "is_paper_metric": True, "warnings": [], "num_skipped": 0}
    assert "NOT the paper's metric" not in imagenet_recon_section(real)
