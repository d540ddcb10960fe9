"""``dcar-bench parity DIR``: recompute an official-code fixture with our models and compare.

Why: a re-implementation is only trustworthy for the paper's numbers if it reproduces
the official model's outputs on the same weights. A fixture directory holds, per set,
``<kind>_<name>_config.json`` (official config format), ``<kind>_<name>_state_dict.pt``
and ``<kind>_<name>_io.pt`` (inputs and the official outputs), see
``tests/fixtures/parity/README.md``. Everything (widths, depths, batch, image size) is
derived from those files, so other fixtures of the same format work too.

Numerics: the tokenizer is recomputed in float64 by default. The fixture outputs are
float32 results of one particular CPU kernel set; a float32 recomputation with other
kernels (another torch version, thread count or CPU) differs by accumulated rounding of
about 1e-6 relative, i.e. ~1.5e-5 absolute on the small encoder's latents (magnitude
~20) - noise that says nothing about the maths. Recomputing in float64 removes our side's
rounding, so what remains is the fixture's own float32 rounding. ``--dtype float32``
shows the float32 figures.

Tolerances: named outputs (latents, indices, residuals, loss, decoded images) must be
within 1e-5 absolute (indices exactly equal). Probes are intermediate activations whose
magnitude grows to ~80 in the small decoder; float32, the fixture's precision, spaces
representable numbers 7.6e-6 apart there, so its own rounding exceeds 1e-5 absolute.
A probe is therefore held to 1e-5 *relative to its scale*: ``1e-5 * max(1, max|reference|)``
(the table prints the tolerance used for each row).

Exit status: 0 when every compared output is within tolerance (1e-5 absolute) and
every index matches exactly; 1 otherwise, including when DIR holds no fixture set, a
set is incomplete, an output is not understood, or generator sets cannot be checked.
"""
from __future__ import annotations

import argparse
import math
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from baselines.dcar.parity_common import ParityResult, compare

DEFAULT_TOLERANCE = 1e-5
_SET_PATTERN = re.compile(r"^(tokenizer|generator)_(.+)_config\.json$")
# io entries that are inputs, not outputs
_TOKENIZER_INPUTS = ("input_image",)
_INTEGER_OUTPUTS = ("indices",)


@dataclass
class FixtureSet:
    """One ``<kind>_<name>`` triple of files in a fixture directory."""

    kind: str  # "tokenizer" | "generator"
    name: str
    config: Path
    state_dict: Path
    io: Path

    @property
    def label(self) -> str:
        return f"{self.kind}_{self.name}"

    def missing_files(self) -> list[Path]:
        return [p for p in (self.config, self.state_dict, self.io) if not p.is_file()]


@dataclass
class SetOutcome:
    """The comparisons of one set, plus problems that prevented comparing (each one a failure)."""

    fixture: FixtureSet
    results: list[ParityResult] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.problems and bool(self.results) and all(r.passed for r in self.results)


def find_sets(directory: Path) -> list[FixtureSet]:
    """Every ``tokenizer_*``/``generator_*`` set in ``directory``, by its config file, sorted."""
    sets = []
    for cfg in sorted(directory.glob("*_config.json")):
        m = _SET_PATTERN.match(cfg.name)
        if not m:
            continue
        kind, name = m.groups()
        sets.append(FixtureSet(kind, name, cfg, directory / f"{kind}_{name}_state_dict.pt",
                               directory / f"{kind}_{name}_io.pt"))
    return sets


# ----------------------------------------------------------------------------- tokenizer


def tokenizer_outputs(model, image) -> dict:
    """Every output the fixture format defines, recomputed from ``image`` (in [-1, 1]) with ``model``.

    Probe names: ``enc.project_in``, ``enc.stages.<i>`` (stages applied in order),
    ``dec.project_in`` (of our quantised latent) and ``dec.stages.<i>`` (i descending).
    """
    import torch

    enc, dec = model.encoder, model.decoder
    with torch.no_grad():
        probes = {}
        x = enc.project_in(image)
        probes["enc.project_in"] = x
        for i, stage in enumerate(enc.stages):
            x = stage(x)
            probes[f"enc.stages.{i}"] = x
        encoder_out = enc.project_out(x)
        z_q, info = model.quantize(encoder_out)
        y = dec.project_in(z_q.to(image.dtype))
        probes["dec.project_in"] = y
        for i in reversed(range(len(dec.stages))):
            y = dec.stages[i](y)
            probes[f"dec.stages.{i}"] = y
        outputs = {
            "encoder_out": encoder_out,
            "z_quantized": z_q,
            "indices": info["indices"],
            "residual_features": info["residual"],
            "features_l2": info["features"],
            "quantizer_loss": info["loss"],
            "decoded_from_zq": model.decode(z_q),
            "decoded_hybrid": model.decode_tokens(info["indices"], info["residual"]),
            "decoded_tokens_only": model.decode_tokens(info["indices"]),
        }
    return {"outputs": outputs, "probes": probes}


def check_tokenizer(config_path, state_dict_path, io_path, *, dtype: str = "float64",
                    tolerance: float = DEFAULT_TOLERANCE) -> tuple[list[ParityResult], list[str]]:
    """Build DC-HT from the official config, load the state dict strictly, compare every saved output.

    Returns (results, problems); a problem is something that could not be compared
    (an output name this check does not know, a missing input).
    """
    import torch

    from baselines.dcar.tokenizer import DCHT, DCHTConfig

    torch_dtype = {"float64": torch.float64, "float32": torch.float32}[dtype]
    cfg = DCHTConfig.from_official(config_path)
    model = DCHT.from_pretrained(state_dict_path, cfg, torch_dtype=torch_dtype)
    io = torch.load(io_path, map_location="cpu", weights_only=True)
    if "input_image" not in io:
        return [], [f"{Path(io_path).name} has no 'input_image'"]
    ours = tokenizer_outputs(model, io["input_image"].to(torch_dtype))
    results, problems = [], []
    for key, value in io.items():
        if key in _TOKENIZER_INPUTS:
            continue
        if key == "probes":
            for probe, saved in value.items():
                if probe not in ours["probes"]:
                    problems.append(f"unknown probe {probe!r}")
                    continue
                results.append(compare("tokenizer", f"probes.{probe}", ours["probes"][probe], saved, tolerance,
                                       relative_to_scale=True))
        elif key in ours["outputs"]:
            results.append(compare("tokenizer", key, ours["outputs"][key], value, tolerance,
                                   exact=True if key in _INTEGER_OUTPUTS else None))
        else:
            problems.append(f"unknown output {key!r} (not checked)")
    return results, problems


# ----------------------------------------------------------------------------- generator


def _generator_checker() -> Callable | None:
    try:
        from baselines.dcar.generator.parity import check_generator
    except ImportError as exc:
        if getattr(exc, "name", "") and not str(getattr(exc, "name", "")).startswith("baselines.dcar.generator"):
            raise  # the module exists but one of its own imports failed: show that error
        return None
    return check_generator


# ----------------------------------------------------------------------------- command


def run_set(fixture: FixtureSet, *, dtype: str, tolerance: float) -> SetOutcome:
    outcome = SetOutcome(fixture)
    missing = fixture.missing_files()
    if missing:
        outcome.problems.append("incomplete set, missing " + ", ".join(p.name for p in missing))
        return outcome
    if fixture.kind == "tokenizer":
        outcome.results, outcome.problems = check_tokenizer(
            fixture.config, fixture.state_dict, fixture.io, dtype=dtype, tolerance=tolerance)
    else:
        checker = _generator_checker()
        if checker is None:
            outcome.problems.append("not checked: generator parity not available "
                                    "(baselines.dcar.generator.parity is missing)")
        else:
            outcome.results = list(checker(fixture.config, fixture.state_dict, fixture.io))
    if not outcome.results and not outcome.problems:
        outcome.problems.append("no outputs compared")
    return outcome


def format_table(outcomes: list[SetOutcome]) -> str:
    rows = [("set", "output", "shape", "max |diff|", "tolerance", "result")]
    for o in outcomes:
        for r in o.results:
            diff = f"{int(r.max_abs_diff)} differ" if r.exact and math.isfinite(r.max_abs_diff) else f"{r.max_abs_diff:.3g}"
            tol = "exact" if r.exact else f"{r.tolerance:.2g}"
            rows.append((o.fixture.label, r.name, "x".join(map(str, r.shape)), diff, tol, "ok" if r.passed else "FAIL"))
        for p in o.problems:
            rows.append((o.fixture.label, p, "", "", "", "FAIL"))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dcar-bench parity",
        description="Recompute an official DC-AR/DC-HT parity fixture with our models and compare every output.")
    parser.add_argument("directory", type=Path, help="fixture directory (e.g. tests/fixtures/parity)")
    parser.add_argument("--only", choices=("tokenizer", "generator"), default=None,
                        help="check only the sets of this kind")
    parser.add_argument("--dtype", choices=("float64", "float32"), default="float64",
                        help="tokenizer recomputation precision (default float64, see module docs)")
    parser.add_argument("--tolerance", type=float, default=DEFAULT_TOLERANCE,
                        help=f"max absolute difference for float outputs (default {DEFAULT_TOLERANCE:g})")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    directory: Path = args.directory
    if not directory.is_dir():
        print(f"parity: {directory} is not a directory", file=sys.stderr)
        return 1
    sets = [s for s in find_sets(directory) if args.only in (None, s.kind)]
    if not sets:
        what = f"{args.only}_*" if args.only else "tokenizer_* or generator_*"
        print(f"parity: no fixture set ({what}_config.json) in {directory}", file=sys.stderr)
        return 1
    outcomes = [run_set(s, dtype=args.dtype, tolerance=args.tolerance) for s in sets]
    print(format_table(outcomes))
    failed = [o.fixture.label for o in outcomes if not o.passed]
    n = sum(len(o.results) for o in outcomes)
    if failed:
        print(f"\nparity FAILED for {', '.join(failed)} ({n} outputs compared)")
        return 1
    print(f"\nparity ok: {len(outcomes)} set(s), {n} outputs within tolerance")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
