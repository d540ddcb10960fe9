"""Timing, peak memory and per-component breakdown of a model call, on CPU or CUDA.

Why one module: every latency number the harness reports must be taken the same way -- the device
synchronised before the clock starts and after it stops (CUDA events on a GPU, so the host's clock
does not decide what the GPU did), memory peaks reset right before the call, and components timed by
wrapping the methods that do the work, so a breakdown works for any adapter without changing it.
Statistics are plain functions of the stored per-iteration times, so aggregation needs no torch.

Importable without torch; torch is imported when something is measured.
"""
from __future__ import annotations

import math
import os
import platform
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping, Sequence

#: component names of the breakdown (anything not inside one of them is "other": sampling logic, copies)
COMPONENTS = ("text_encoder", "generator_steps", "diffusion_head", "decoder")


# --------------------------------------------------------------------------- statistics


def percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolation percentile (numpy's default), ``q`` in [0, 100]."""
    xs = sorted(float(v) for v in values)
    if not xs:
        raise ValueError("percentile of no values")
    pos = (len(xs) - 1) * q / 100.0
    lo, hi = math.floor(pos), math.ceil(pos)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def summarize(values: Sequence[float]) -> dict[str, float | int]:
    """median, p10, p90, mean, min, max and n of per-iteration times (seconds)."""
    xs = [float(v) for v in values]
    if not xs:
        return {"n": 0}
    return {"n": len(xs), "median": percentile(xs, 50), "p10": percentile(xs, 10), "p90": percentile(xs, 90),
            "mean": sum(xs) / len(xs), "min": min(xs), "max": max(xs)}


# --------------------------------------------------------------------------- device helpers


def resolve_device(device: str) -> str:
    """``auto`` -> ``cuda`` when torch sees a GPU, else ``cpu``; anything else unchanged."""
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def synchronize(device: str) -> None:
    if str(device).startswith("cuda"):
        import torch

        torch.cuda.synchronize()


@dataclass
class Timing:
    """One timed call: wall seconds (host clock after a device sync) and, on CUDA, the event-measured seconds."""

    seconds: float
    wall_seconds: float
    method: str  # "cuda_events" | "perf_counter"
    result: Any = None


def time_call(fn: Callable[[], Any], device: str) -> Timing:
    """Run ``fn()`` once between explicit synchronisations; CUDA events give the GPU-side duration."""
    cuda = str(device).startswith("cuda")
    if cuda:
        import torch

        torch.cuda.synchronize()
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        t0 = time.perf_counter()
        start.record()
        result = fn()
        end.record()
        end.synchronize()
        wall = time.perf_counter() - t0
        return Timing(start.elapsed_time(end) / 1000.0, wall, "cuda_events", result)
    t0 = time.perf_counter()
    result = fn()
    wall = time.perf_counter() - t0
    return Timing(wall, wall, "perf_counter", result)


# --------------------------------------------------------------------------- memory


def _proc_status_kib(key: str) -> int | None:
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


class PeakMemory:
    """Peak memory of the code inside ``with``: CUDA max allocated bytes, or peak RSS of the process on CPU.

    On Linux the RSS high-water mark is reset first (``/proc/self/clear_refs``), so the CPU peak is the
    block's own; where that is not possible, ``kind`` says the peak is the process's since it started.
    """

    def __init__(self, device: str):
        self.device = str(device)
        self.peak_bytes: int | None = None
        self.kind = ""

    def __enter__(self) -> "PeakMemory":
        if self.device.startswith("cuda"):
            import torch

            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self.kind = "cuda_max_memory_allocated"
            return self
        try:
            with open("/proc/self/clear_refs", "w", encoding="ascii") as fh:
                fh.write("5")  # resets VmHWM (peak RSS) to the current RSS
            self.kind = "cpu_peak_rss"
        except OSError:
            self.kind = "cpu_peak_rss_since_process_start"
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.device.startswith("cuda"):
            import torch

            torch.cuda.synchronize()
            self.peak_bytes = int(torch.cuda.max_memory_allocated())
            return
        hwm = _proc_status_kib("VmHWM")
        if hwm is not None:
            self.peak_bytes = hwm * 1024
        else:  # pragma: no cover - non-Linux
            import resource

            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            self.peak_bytes = int(peak if sys.platform == "darwin" else peak * 1024)
            self.kind = "cpu_peak_rss_since_process_start"


# --------------------------------------------------------------------------- component breakdown


@dataclass
class _Frame:
    name: str
    start: float
    children: float = 0.0


@dataclass
class ComponentTimer:
    """Times named components by wrapping methods of the objects that do the work.

    ``targets``: (component, object, method name) triples, e.g. ``("decoder", pipe.vae, "decode")``.
    Time is *exclusive*: a timed method called inside another timed method counts for its own component
    only, so the components never add up to more than the call. On CUDA every wrapped call is
    synchronised on entry and exit -- which costs time, so the suite measures the breakdown in separate
    iterations, never in the timed ones.
    """

    targets: Sequence[tuple[str, Any, str]]
    device: str = "cpu"
    seconds: dict[str, float] = field(default_factory=dict)
    calls: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._stack: list[_Frame] = []
        self._saved: list[tuple[Any, str, bool, Any]] = []

    def _wrap(self, name: str, fn: Callable) -> Callable:
        def timed(*args: Any, **kwargs: Any) -> Any:
            synchronize(self.device)
            frame = _Frame(name, time.perf_counter())
            self._stack.append(frame)
            try:
                return fn(*args, **kwargs)
            finally:
                synchronize(self.device)
                elapsed = time.perf_counter() - frame.start
                self._stack.pop()
                if self._stack:
                    self._stack[-1].children += elapsed
                self.seconds[name] = self.seconds.get(name, 0.0) + elapsed - frame.children
                self.calls[name] = self.calls.get(name, 0) + 1

        return timed

    def __enter__(self) -> "ComponentTimer":
        for name, owner, attr in self.targets:
            own = vars(owner) if hasattr(owner, "__dict__") else {}
            had = attr in own
            self._saved.append((owner, attr, had, own.get(attr)))
            setattr(owner, attr, self._wrap(name, getattr(owner, attr)))
        return self

    def __exit__(self, *exc: Any) -> None:
        for owner, attr, had, value in reversed(self._saved):
            if had:
                setattr(owner, attr, value)
            else:
                delattr(owner, attr)
        self._saved.clear()


def find_components(adapter: Any) -> list[tuple[str, Any, str]]:
    """What to time inside an adapter's ``generate``.

    An adapter may say it itself (``profile_components()``, as DC-AR does); otherwise a diffusers-style
    pipeline held as ``adapter.pipeline`` or ``adapter.pipe`` is searched for its usual parts
    (``text_encoder``/``text_encoder_2`` forward, ``transformer``/``unet`` forward, ``vae.decode``).
    Empty when nothing is recognised: the suite then reports the end-to-end time only.
    """
    own = getattr(adapter, "profile_components", None)
    if callable(own):
        return list(own())
    pipe = getattr(adapter, "pipeline", None) or getattr(adapter, "pipe", None)
    if pipe is None:
        return []
    out: list[tuple[str, Any, str]] = []
    for attr, component, method in (("text_encoder", "text_encoder", "forward"),
                                    ("text_encoder_2", "text_encoder", "forward"),
                                    ("transformer", "generator_steps", "forward"),
                                    ("unet", "generator_steps", "forward"),
                                    ("vae", "decoder", "decode")):
        part = getattr(pipe, attr, None)
        if part is not None and callable(getattr(part, method, None)):
            out.append((component, part, method))
    return out


# --------------------------------------------------------------------------- environment


def weights_dtype(adapter: Any) -> str | None:
    """The dtype of the first floating parameter of any module the adapter's components belong to."""
    for _, owner, _ in find_components(adapter):
        params = getattr(owner, "parameters", None)
        if callable(params):
            for p in params():
                if p.is_floating_point():
                    return str(p.dtype).replace("torch.", "")
    return None


def _cpu_model() -> str | None:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        return None
    return None


def environment(device: str) -> dict[str, Any]:
    """Device name, driver, CUDA/torch versions, thread counts: the facts a timing is meaningless without."""
    import torch

    from harness.provenance import device_info

    env: dict[str, Any] = {
        "device": str(device),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "threads": torch.get_num_threads(),
        "interop_threads": torch.get_num_interop_threads(),
        "cpu_count": os.cpu_count(),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
    }
    info = device_info()
    env["cpu"] = _cpu_model() or info.get("processor") or platform.machine()
    if str(device).startswith("cuda"):
        cuda = info.get("cuda") or {}
        env["device_name"] = torch.cuda.get_device_name()
        env["cuda"] = cuda.get("version")
        env["driver"] = cuda.get("driver")
        env["cudnn"] = torch.backends.cudnn.version()
    else:
        env["device_name"] = f"CPU ({env['cpu']}, {env['threads']} thread{'s' if env['threads'] != 1 else ''})"
    return env


def load_average() -> list[float] | None:
    """The 1/5/15-minute load average (a timing on a shared machine is only as good as its load)."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:  # pragma: no cover
        return None


def ratio(a: float | None, b: float | None) -> float | None:
    """``a / b`` or None when either is missing or b is 0."""
    if a is None or b is None or not b:
        return None
    return float(a) / float(b)


def paired_ratios(xs: Mapping[int, float], ys: Mapping[int, float]) -> list[float]:
    """Per-round ratios x_r / y_r over the rounds both have (interleaved runs share each round's machine noise)."""
    return [xs[r] / ys[r] for r in sorted(set(xs) & set(ys)) if ys[r]]


def mean(values: Iterable[float]) -> float | None:
    xs = list(values)
    return sum(xs) / len(xs) if xs else None
