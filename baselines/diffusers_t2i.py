"""One generic diffusers text-to-image adapter for the paper's Table 2/3 diffusion peers, one named config each.

Why one adapter: PixArt-alpha, PixArt-Sigma, Sana-0.6B, SDXL, SD3-medium and Playground v2.5 are all diffusers
pipelines, so the harness drives them the same way; what differs is data, kept in
``baselines/diffusers_configs/<name>.json`` (pipeline class, Hugging Face repo, Table 2 resolution / steps, the
pipeline's CFG default, the published component configs, the published parameter count and what it covers;
``SOURCE.md`` says where each came from).

Three ways to build one (``config`` x ``random_init_seed`` / ``weights``):

* **real weights** (default): a diffusers pipeline directory from ``weights=``, the model's env var or the
  Hugging Face cache (``local_files_only=True``; nothing is downloaded). The directory's ``model_index.json``
  must name the expected pipeline and its denoiser config must match the published one, so a directory of
  another model is refused in one line instead of loading into nonsense.
* **full size, seeded random weights** (``random_init_seed=<int>``): every component from its published config
  (``components/*.json``), offline tokenizers producing the real max lengths
  (:mod:`baselines.diffusers_offline_tokenizers`). For timing (the profile suite): the cost is the real model's,
  the images are noise. ``device="meta"`` builds it without memory (parameter counts).
* **tiny** (``config="tiny"``): a seconds-on-CPU pipeline of the same classes, random (seed 0) unless weights
  are given; for tests and smoke runs.

Seeds: each image gets its own CPU ``torch.Generator().manual_seed(seed)``; diffusers' ``randn_tensor`` draws
image i's initial latents from ``generator[i]`` alone when given a list, so an image does not depend on the
batch or the device (the schedulers used here are deterministic after the initial noise). On CUDA the default
dtype is float16 (``dtype=`` overrides). None of these pipelines has a safety checker; SDXL's invisible
watermark is turned off; both are recorded in ``info().extra``.
"""
from __future__ import annotations

import difflib
import json
from functools import lru_cache
from pathlib import Path
from typing import Any, ClassVar, Mapping, Sequence

from baselines.common import BatchPadding, random_init_tag, seeded
from harness.api import AdapterInfo, MissingResourceError, Requirement, TextToImage, UserError

CONFIG_DIR = Path(__file__).with_name("diffusers_configs")
SIZES = ("full", "tiny")
#: generate() options (per call) and the defaults that come from the model's config file
GENERATE_OPTIONS = ("num_inference_steps", "guidance_scale")


class UnknownModelError(UserError, ValueError):
    """A model name with no config file in ``baselines/diffusers_configs/``."""


class WrongWeightsError(UserError, ValueError):
    """A weights directory that holds another model (or no diffusers pipeline at all)."""


# --------------------------------------------------------------------------- configs


def model_names() -> list[str]:
    """Every named model config (``baselines/diffusers_configs/<name>.json``)."""
    return sorted(p.stem for p in CONFIG_DIR.glob("*.json"))


@lru_cache(maxsize=None)
def _load_json(path: str) -> dict[str, Any]:
    return json.loads(Path(path).read_text())


def model_config(name: str) -> dict[str, Any]:
    """The named model's config; an unknown name is a one-line error with did-you-mean."""
    path = CONFIG_DIR / f"{name}.json"
    if not path.is_file():
        known = model_names()
        close = difflib.get_close_matches(str(name), known, n=3, cutoff=0.5)
        hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
        raise UnknownModelError(f"unknown diffusers model {name!r}.{hint} Known: {', '.join(known)} "
                                f"(configs in {CONFIG_DIR})")
    return json.loads(json.dumps(_load_json(str(path))))  # a private copy


def component_config(spec: Mapping[str, Any], size: str) -> dict[str, Any]:
    """A component's config for ``size``: the published JSON file (full) or the inline tiny dict."""
    if size == "tiny" and "tiny" in spec:
        return dict(spec["tiny"])
    if "full" not in spec:
        raise ValueError(f"component {spec.get('class')} has no {size} config")
    cfg = dict(_load_json(str(CONFIG_DIR / spec["full"])))
    cfg.pop("_class_name", None)
    cfg.pop("architectures", None)
    return cfg


def requirements_for(name: str) -> list[Requirement]:
    """The weights directories a named model needs (what ``doctor`` lists and ``locate`` searches)."""
    cfg = model_config(name)
    reqs = []
    for key, option in (("weights", "weights"), ("transformer_weights", "transformer_weights")):
        w = cfg.get(key)
        if not w:
            continue
        sub = f"{w['subfolder']}/" if w.get("subfolder") else ""
        what = w.get("what", f"the {cfg['paper_row']} diffusers pipeline")
        reqs.append(Requirement(
            name=f"{cfg['paper_row']} {'pipeline' if key == 'weights' else w['component']} weights (diffusers format)",
            description=(f"{what}: a snapshot of https://huggingface.co/{w['hf_repo']} "
                         f"(`huggingface-cli download {w['hf_repo']}` on a machine with internet); or "
                         f"--set model.random_init_seed=0 for random weights (timing only, not the paper's metric)"),
            env_var=w["env_var"], config_key=option, hf_repo=w["hf_repo"],
            must_contain=(f"{sub}config.json",) if sub else ("model_index.json",)))
    return reqs


def loaded_weight_files(folder: Path, variant: str | None = None) -> list[Path]:
    """The weight files diffusers / transformers load from one component folder (hashed for provenance).

    Safetensors are preferred over ``.bin`` (the libraries' default), and only files of the requested
    ``variant`` (``model.fp16.safetensors``) or, without one, files without a variant infix, so a repo
    holding fp32, fp16 and ``.bin`` copies of a 19 GB text encoder is hashed once, not three times.
    """
    def variant_of(f: Path) -> str | None:
        stem = f.name[: -len(f.suffix)]
        parts = stem.split(".")
        return parts[-1] if len(parts) > 1 else None

    for ext in (".safetensors", ".bin"):
        files = [f for f in sorted(Path(folder).glob(f"*{ext}")) if variant_of(f) == variant]
        if files:
            return files
    return []


def _one_line(exc: MissingResourceError) -> MissingResourceError:
    """The multi-line text of :func:`harness.resources.missing_message` joined into one line."""
    return MissingResourceError(" ".join(line.strip() for line in str(exc).splitlines() if line.strip()))


# --------------------------------------------------------------------------- building


def _class(library: str, name: str):
    import importlib

    return getattr(importlib.import_module(library), name)


def _transformers_model(spec: Mapping[str, Any], cfg: dict[str, Any]):
    import transformers

    cls = _class("transformers", spec["class"])
    cfg = dict(cfg)
    if spec["class"].startswith("CLIP"):
        config = transformers.CLIPTextConfig(**cfg)
    elif spec["class"].startswith("T5"):
        config = transformers.T5Config(**cfg)
    elif spec["class"].startswith("Gemma2"):
        cfg.setdefault("attn_implementation", "eager")
        config = transformers.Gemma2Config(**cfg)
    else:  # pragma: no cover - a config file naming a class this helper does not know
        raise ValueError(f"no config class known for {spec['class']}")
    return cls(config)


def build_component(spec: Mapping[str, Any], size: str):
    """One component (model, scheduler or offline tokenizer) from its config, weights from torch's global RNG."""
    if "offline" in spec:
        from baselines.diffusers_offline_tokenizers import offline_tokenizer

        return offline_tokenizer(spec["offline"], spec["max_length"])
    cfg = component_config(spec, size)
    if spec["library"] == "transformers":
        return _transformers_model(spec, cfg)
    cls = _class("diffusers", spec["class"])
    return cls.from_config(cfg)


def build_components(name: str, size: str = "full", *, seed: int = 0, device: str = "cpu",
                     dtype: Any = None) -> dict[str, Any]:
    """Every pipeline component of model ``name`` with seeded random weights, built directly on ``device``.

    ``device="meta"`` allocates nothing (parameter counts of the full-size models, a T5-XXL included). Each
    component gets its own seed (``seed`` + its index), so changing one config does not move the others.
    ``dtype`` casts each component right after it is built, so the float32 copy of only one component (at
    most the 19 GB T5-XXL) exists at a time.
    """
    import torch

    if size not in SIZES:
        raise ValueError(f"config must be one of {SIZES}, got {size!r}")
    cfg = model_config(name)
    out: dict[str, Any] = {}
    for i, (key, spec) in enumerate(cfg["components"].items()):
        if "offline" in spec or key == "scheduler":
            out[key] = build_component(spec, size)
            continue
        with seeded(seed + i), torch.device(device):
            module = build_component(spec, size).eval()
        if dtype is not None and device != "meta" and next(module.parameters()).dtype != dtype:
            module = module.to(dtype)
        out[key] = module
    return out


def num_params(module: Any) -> int:
    return sum(p.numel() for p in module.parameters())


def published_params(name: str) -> dict[str, Any]:
    """The published parameter count of model ``name``: text, value, tolerance, components covered, source."""
    return dict(model_config(name)["published_params"])


# --------------------------------------------------------------------------- the adapter


class DiffusersTextToImage(BatchPadding, TextToImage):
    """A diffusers text-to-image pipeline behind the harness contract (``model`` picks the named config)."""

    model: ClassVar[str | None] = None  # set by the named subclasses
    libraries: ClassVar[tuple[str, ...]] = ("diffusers", "transformers")

    def __init__(self, model: str | None = None, weights: str | None = None, transformer_weights: str | None = None,
                 config: str = "full", random_init_seed: int | None = None, device: str = "auto",
                 dtype: str = "auto", resolution: int | None = None, variant: str | None = None,
                 show_progress: bool = False, **defaults: Any):
        import torch

        _require_libraries()
        name = model or self.model
        if name is None:
            raise UnknownModelError(f"pass model=<name>; known: {', '.join(model_names())}")
        if model is not None and self.model is not None and model != self.model:
            raise ValueError(f"this adapter is {self.model!r}; model={model!r} contradicts it")
        self.cfg = model_config(name)
        self.name = name
        if config not in SIZES:
            raise ValueError(f"config must be one of {SIZES}, got {config!r}")
        unknown = set(defaults) - set(GENERATE_OPTIONS)
        if unknown:
            raise TypeError(f"unknown {name} option(s) {sorted(unknown)}; known: {sorted(GENERATE_OPTIONS)}")
        if weights is not None and random_init_seed is not None:
            raise ValueError("give either weights or random_init_seed, not both")
        if config == "tiny" and weights is None and random_init_seed is None:
            random_init_seed = 0  # there are no released tiny weights
        self.size = config
        self.random_init_seed = random_init_seed
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.device = torch.device(device)
        if dtype == "auto":
            dtype = "float16" if self.device.type == "cuda" else "float32"
        if dtype not in ("float32", "float16", "bfloat16"):
            raise ValueError(f"dtype must be auto, float32, float16 or bfloat16, got {dtype!r}")
        self.dtype = getattr(torch, dtype)
        base = self.cfg["defaults"]
        self.resolution = int(resolution or (self.cfg["tiny_resolution"] if config == "tiny" else base["resolution"]))
        self.defaults = {k: base[k] for k in GENERATE_OPTIONS} | defaults
        self.weights: dict[str, str] = {}
        self.tokenizer_source = "offline word-level tokenizers (random init; see baselines/diffusers_offline_tokenizers.py)"
        if random_init_seed is not None:
            self.pipe = self._random_pipeline(int(random_init_seed))
        else:
            self.pipe = self._load_pipeline(weights, transformer_weights, variant)
        self.pipe.set_progress_bar_config(disable=not show_progress)
        self._apply_float16_overrides()
        self.nonfinite_images = 0

    # ------------------------------------------------------------------ resources

    @classmethod
    def requirements(cls) -> list[Requirement]:
        return requirements_for(cls.model) if cls.model else []

    def _pipeline_class(self):
        return _class("diffusers", self.cfg["pipeline"])

    def _random_pipeline(self, seed: int):
        parts = build_components(self.name, self.size, seed=seed, device=str(self.device), dtype=self.dtype)
        self.weights = {key: random_init_tag(seed) for key, part in parts.items() if hasattr(part, "parameters")}
        return self._pipeline_class()(**parts, **self.cfg.get("pipeline_kwargs", {}))

    def _expected_signature(self) -> dict[str, dict[str, Any]]:
        """The config values a weights directory's components must have (the published or the tiny ones)."""
        out = {}
        for key, fields in self.cfg["signature"].items():
            spec = self.cfg["components"][key]
            if key == "scheduler":
                out[key] = {"_class_name": spec["class"]}
                continue
            cfg = component_config(spec, self.size)
            out[key] = {f: cfg[f] for f in fields if f in cfg}
        return out

    def _check_directory(self, root: Path, overrides: Mapping[str, Path]) -> None:
        """Refuse, in one line, a directory that is not this model's diffusers pipeline."""
        index_file = root / "model_index.json"
        try:
            index = json.loads(index_file.read_text())
        except (OSError, ValueError) as exc:
            raise WrongWeightsError(f"{index_file}: not a readable diffusers model_index.json ({exc}); "
                                    f"{self.name} needs a snapshot of {self.cfg['weights']['hf_repo']}") from exc
        got = index.get("_class_name")
        if got != self.cfg["pipeline"]:
            raise WrongWeightsError(f"{root} holds a {got} pipeline, but {self.name} needs a {self.cfg['pipeline']} "
                                    f"(a snapshot of {self.cfg['weights']['hf_repo']}); point model.weights at it")
        for key, want in self._expected_signature().items():
            if key == "scheduler":
                have = {"_class_name": (index.get("scheduler") or [None, None])[1]}
            else:
                folder = overrides.get(key, root / key)
                try:
                    have = json.loads((folder / "config.json").read_text())
                except (OSError, ValueError) as exc:
                    raise WrongWeightsError(f"{folder / 'config.json'}: missing or unreadable ({exc}); {self.name} "
                                            f"needs a snapshot of {self.cfg['weights']['hf_repo']}") from exc
            diff = {f: (have.get(f), v) for f, v in want.items() if _norm(have.get(f)) != _norm(v)}
            if diff:
                shown = ", ".join(f"{f}={h!r} (expected {w!r})" for f, (h, w) in diff.items())
                raise WrongWeightsError(f"{root}: its {key} is not {self.name}'s ({shown}); this looks like the "
                                        f"weights of another model; {self.name} needs {self.cfg['weights']['hf_repo']}"
                                        + (" (or pass config=tiny for a tiny pipeline)" if self.size == "full" else ""))

    def _load_pipeline(self, weights: str | None, transformer_weights: str | None, variant: str | None):
        from harness.io import file_sha256
        from harness.resources import locate

        reqs = {r.config_key: r for r in requirements_for(self.name)}
        try:
            root = locate(reqs["weights"], weights)
            extra = {}
            if "transformer_weights" in reqs:
                tw = self.cfg["transformer_weights"]
                extra[tw["component"]] = locate(reqs["transformer_weights"], transformer_weights) / tw["subfolder"]
        except MissingResourceError as exc:
            raise _one_line(exc) from exc
        if transformer_weights is not None and "transformer_weights" not in reqs:
            raise ValueError(f"{self.name} takes no transformer_weights (its pipeline directory has the transformer)")
        self._check_directory(root, extra)
        kwargs: dict[str, Any] = dict(local_files_only=True, torch_dtype=self.dtype, **self.cfg.get("pipeline_kwargs", {}))
        if variant:
            kwargs["variant"] = variant
        for key, folder in extra.items():
            spec = self.cfg["components"][key]
            kwargs[key] = _class("diffusers", spec["class"]).from_pretrained(
                str(folder), local_files_only=True, torch_dtype=self.dtype)
        try:
            pipe = self._pipeline_class().from_pretrained(str(root), **kwargs)
        except (OSError, ValueError, EnvironmentError) as exc:
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise WrongWeightsError(f"{root}: diffusers could not load it as {self.cfg['pipeline']} ({first}); "
                                    f"replace it with an intact snapshot of {self.cfg['weights']['hf_repo']}") from exc
        self.tokenizer_source = "the weights directory's own tokenizer files"
        folders = {key: extra.get(key, root / key) for key in pipe.components if hasattr(pipe.components[key],
                                                                                       "parameters")}
        for folder in folders.values():
            for f in loaded_weight_files(folder, variant):
                self.weights[str(f)] = file_sha256(f)
        return pipe.to(self.device)

    def _apply_float16_overrides(self) -> None:
        """Components the model's own documentation runs in another dtype when the pipeline is float16."""
        import torch

        if self.dtype != torch.float16 or self.device.type == "meta":
            return
        for key, dtype in self.cfg.get("float16_overrides", {}).items():
            setattr(self.pipe, key, getattr(self.pipe, key).to(getattr(torch, dtype)))

    def component_dtypes(self) -> dict[str, str]:
        return {k: str(next(v.parameters()).dtype).replace("torch.", "")
                for k, v in self.pipe.components.items() if hasattr(v, "parameters")}

    # ------------------------------------------------------------------ contract

    def call_kwargs(self, prompts: Sequence[str], seeds: Sequence[int], **options: Any) -> dict[str, Any]:
        """The exact keyword arguments given to the diffusers pipeline for this batch (tests call it too)."""
        import torch

        unknown = set(options) - set(GENERATE_OPTIONS)
        if unknown:
            raise TypeError(f"unknown generate() option(s) {sorted(unknown)}; known: {sorted(GENERATE_OPTIONS)}")
        merged = {**self.defaults, **options}
        call = dict(self.cfg.get("call", {}))
        if self.size == "tiny":
            call.update(self.cfg.get("tiny_call", {}))
        return dict(prompt=list(prompts), height=self.resolution, width=self.resolution,
                    num_inference_steps=int(merged["num_inference_steps"]),
                    guidance_scale=float(merged["guidance_scale"]),
                    generator=[torch.Generator().manual_seed(int(s)) for s in seeds],
                    output_type="pt", **call)

    def generate(self, prompts: Sequence[str], seeds: Sequence[int], **options: Any):
        """Images (B, 3, H, W) float32 CPU in [0, 1]; options: ``num_inference_steps``, ``guidance_scale``."""
        import torch

        from baselines.common import nonfinite_rows, require_finite

        if isinstance(prompts, str) or len(prompts) != len(seeds) or not prompts:
            raise ValueError(f"need one seed per prompt and at least one prompt (got {len(prompts)} prompts, "
                             f"{len(seeds)} seeds)")
        n = len(prompts)
        kwargs = self.call_kwargs(self._pad(list(prompts)), self._pad(list(seeds)), **options)
        with torch.inference_mode():
            images = self.pipe(**kwargs).images[:n]
        images = images.float().cpu()
        if self.random_init_seed is None:
            require_finite(images, f"{self.name} images", fix="check the weights (and try dtype=float32)")
        else:  # random fp16 weights may overflow; the profile times them anyway
            self.nonfinite_images += len(nonfinite_rows(images))
            images = torch.nan_to_num(images, nan=0.0, posinf=1.0, neginf=0.0)
        return images.clamp(0, 1)

    def info(self) -> AdapterInfo:
        from baselines.common import uses_random_init

        parts = {k: num_params(v) for k, v in self.pipe.components.items() if hasattr(v, "parameters")}
        pub = self.cfg["published_params"]
        return AdapterInfo(
            name=f"{self.name}{'-tiny' if self.size == 'tiny' else ''}{'-random' if self.random_init_seed is not None else ''}",
            kind=self.kind, resolution=self.resolution, dtype=str(self.dtype).replace("torch.", ""),
            steps=int(self.defaults["num_inference_steps"]), num_params=sum(parts.values()),
            weights=dict(self.weights), real_weights=bool(self.weights) and not uses_random_init(self.weights),
            extra={
                "model": self.name, "config": self.size, "pipeline": self.cfg["pipeline"],
                "hf_repo": self.cfg["weights"]["hf_repo"], "paper_row": self.cfg["paper_row"],
                "device": str(self.device), "generate_defaults": dict(self.defaults),
                "defaults_source": self.cfg["defaults_source"], "call": dict(self.cfg.get("call", {})),
                "scheduler": type(self.pipe.scheduler).__name__,
                "component_params": parts, "component_dtypes": self.component_dtypes(),
                "published_params": {k: pub[k] for k in ("text", "covers", "source")},
                "tokenizers": self.tokenizer_source,
                "safety_checker": "none (this pipeline has no safety checker)",
                "watermark": False,
                "seeding": "one CPU torch.Generator().manual_seed(seed) per image (diffusers generator list)",
                "nonfinite_images_replaced": self.nonfinite_images,
            },
        )

    def close(self) -> None:
        self.pipe = None
        try:
            import torch

            if torch.cuda.is_available():
                torch.cuda.empty_cache()
        except ImportError:  # pragma: no cover
            pass


def _require_libraries() -> None:
    """diffusers and transformers come with the ``diffusers`` extra; without them, one line saying so."""
    import importlib.util

    from harness.api import MissingDependencyError

    missing = [m for m in ("diffusers", "transformers", "tokenizers") if importlib.util.find_spec(m) is None]
    if missing:
        raise MissingDependencyError(f"the diffusers adapters need {', '.join(missing)}: "
                                     "pip install 'dcar-bench[diffusers]'")


def _norm(value: Any) -> Any:
    """JSON lists and tuples compare equal (a saved config has lists where the code has tuples)."""
    if isinstance(value, (list, tuple)):
        return [_norm(v) for v in value]
    return value


# --------------------------------------------------------------------------- the named adapters (registry targets)


class PixArtAlpha512(DiffusersTextToImage):
    model: ClassVar[str] = "pixart-alpha-512"


class PixArtSigma512(DiffusersTextToImage):
    model: ClassVar[str] = "pixart-sigma-512"


class Sana06B512(DiffusersTextToImage):
    model: ClassVar[str] = "sana-0.6b-512"


class SDXL1024(DiffusersTextToImage):
    model: ClassVar[str] = "sdxl-1024"


class SDXL512(DiffusersTextToImage):
    model: ClassVar[str] = "sdxl-512"


class SD3Medium1024(DiffusersTextToImage):
    model: ClassVar[str] = "sd3-medium-1024"


class PlaygroundV25_1024(DiffusersTextToImage):  # noqa: N801 - the version number reads better with a separator
    model: ClassVar[str] = "playground-v2.5-1024"


ADAPTERS: dict[str, type[DiffusersTextToImage]] = {
    cls.model: cls for cls in (PixArtAlpha512, PixArtSigma512, Sana06B512, SDXL1024, SDXL512, SD3Medium1024,
                               PlaygroundV25_1024)
}
