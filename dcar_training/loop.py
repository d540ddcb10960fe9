"""The training loop every recipe shares: data order, micro-batches, gradient averaging, mixed precision,
checkpoints that resume bit-exactly, loss logs and measured device time.

Why randomness is drawn per *sample* (a CPU generator seeded by sha256(seed, purpose, sample position)) and not
from the process RNG: a sample's masking ratio, path choice, diffusion timestep and noise then depend only on
which sample it is, not on how many ranks there are or whether the run was resumed. With the same global batch,
1 rank accumulating over k micro-batches and k ranks with one micro-batch each compute the same per-micro-batch
losses; gradients differ only by float summation order. Micro-batch ``j`` of a step covers sample positions
``[j*m, (j+1)*m)`` of that step's global batch and belongs to rank ``j // accumulation``. BatchNorm statistics
(DC-HT's decoder, the PatchGAN discriminator) are per micro-batch, so they too agree between those layouts.

A checkpoint holds the models, optimisers, LR schedulers, grad scalers, every RNG state, the data position
(the step; the order is a function of seed and step) and the device seconds spent; a run resumed from it
continues with the same bits as one that never stopped.
"""
from __future__ import annotations

import abc
import contextlib
import io
import json
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

import numpy as np
import torch

from harness.api import UserError
from harness.io import atomic_write_bytes, canonical_json
from harness.seeding import item_generator, item_seed

from .distributed import DistInfo, average_gradients, barrier

CHECKPOINT_FORMAT = "dcar-bench-train-checkpoint-1"
AMP_DTYPES = {"none": None, "bf16": torch.bfloat16, "fp16": torch.float16}


class TrainingError(UserError, ValueError):
    """A training config or checkpoint is unusable; the message names the key or file and the fix."""


@dataclass(frozen=True)
class LoopConfig:
    """How many optimizer steps, over which global batch, split into which micro-batches."""

    steps: int
    batch_size: int  # samples per optimizer step, over all ranks
    micro_batch_size: int  # samples per forward pass on one rank
    seed: int = 0
    log_every: int = 1
    checkpoint_every: int = 0  # 0: only at the end of the stage
    amp: str = "none"  # none | bf16 | fp16 (autocast on CUDA only; CPU runs stay float32)

    def __post_init__(self) -> None:
        if self.steps < 0 or self.batch_size < 1 or self.micro_batch_size < 1:
            raise TrainingError(f"training loop: steps >= 0, batch_size >= 1 and micro_batch_size >= 1 needed, got "
                                f"{self.steps}, {self.batch_size}, {self.micro_batch_size}")
        if self.amp not in AMP_DTYPES:
            raise TrainingError(f"training.amp must be one of {sorted(AMP_DTYPES)}, got {self.amp!r}")

    def accumulation(self, world_size: int) -> int:
        per_rank = self.batch_size // world_size
        if self.batch_size % world_size or per_rank % self.micro_batch_size:
            raise TrainingError(f"batch_size {self.batch_size} must split evenly into {world_size} rank(s) x "
                                f"micro_batch_size {self.micro_batch_size}. Fix: choose batch_size = ranks x "
                                f"micro_batch_size x accumulation steps")
        return per_rank // self.micro_batch_size


@dataclass(frozen=True)
class MicroBatch:
    positions: tuple[int, ...]  # global sample positions (unique over the whole stage)
    indices: tuple[int, ...]  # dataset indices


class BufferAverage:
    """Makes BatchNorm running statistics independent of how a step's micro-batches are laid out over ranks.

    Within one step every micro-batch updates the running statistics from the *same* starting values
    (recorded after each micro-batch with :meth:`next`, then restored); at the end the buffers become the mean
    of those updates over all micro-batches of all ranks. One micro-batch on one rank is plain BatchNorm.
    """

    def __init__(self, modules: Sequence[torch.nn.Module], dist: DistInfo):
        self.buffers = [b for m in modules for b in m.buffers()]
        self.dist = dist
        self.start = [b.detach().clone() for b in self.buffers]
        self.sums = [torch.zeros_like(b, dtype=torch.float64) for b in self.buffers]
        self.count = 0

    def next(self) -> None:
        with torch.no_grad():
            for b, s, start in zip(self.buffers, self.sums, self.start):
                s += b.double()
                b.copy_(start)
        self.count += 1

    def finish(self) -> None:
        if not self.count:
            return
        means = [s / self.count for s in self.sums]
        if self.dist.enabled:
            import torch.distributed as tdist

            flat = torch.cat([m.reshape(-1) for m in means])
            tdist.all_reduce(flat)
            flat /= self.dist.world_size
            means, offset = [], 0
            for s in self.sums:
                means.append(flat[offset:offset + s.numel()].view_as(s))
                offset += s.numel()
        with torch.no_grad():
            for b, m in zip(self.buffers, means):
                b.copy_(m.round() if not b.is_floating_point() else m)


class Task(abc.ABC):
    """One stage's model side: modules, optimisers, and the loss of a step's micro-batches."""

    @abc.abstractmethod
    def modules(self) -> Mapping[str, torch.nn.Module]:
        ...

    @abc.abstractmethod
    def optimizers(self) -> Mapping[str, torch.optim.Optimizer]:
        ...

    def schedulers(self) -> Mapping[str, Any]:
        return {}

    @abc.abstractmethod
    def train_step(self, step: int, micro_batches: Sequence[MicroBatch], loop: "Loop") -> dict[str, float]:
        """Forward + backward (through :meth:`Loop.backward`) + :meth:`Loop.optimizer_step`; returns this rank's
        metrics averaged over its micro-batches (the loop averages them over ranks for the log)."""


def data_order(seed: int, epoch: int, n: int) -> torch.Tensor:
    """The permutation of epoch ``epoch`` (a function of seed and epoch only)."""
    return torch.randperm(n, generator=item_generator(item_seed(seed, f"data-order/{epoch}")))


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({torch.get_num_threads()} threads)"


class Loop:
    """Runs a :class:`Task` for ``config.steps`` optimizer steps in ``out_dir`` (checkpoint + loss log there)."""

    def __init__(self, task: Task, config: LoopConfig, dataset_size: int, out_dir: str | Path, *,
                 dist: DistInfo = DistInfo(), device: torch.device | str = "cpu",
                 progress: Callable[[Any], Any] | None = None, identity: Mapping[str, Any] | None = None):
        self.task, self.config, self.n = task, config, int(dataset_size)
        self.dist, self.device = dist, torch.device(device)
        self.out_dir = Path(out_dir)
        self.progress = progress
        self.accum = config.accumulation(dist.world_size)
        loop_identity = {k: v for k, v in asdict(config).items() if k != "checkpoint_every"}  # may change on resume
        self.identity = {"loop": loop_identity, "dataset_size": self.n, **(identity or {})}
        amp = AMP_DTYPES[config.amp] if self.device.type == "cuda" else None
        self.amp_dtype = amp
        self.scalers = {name: torch.amp.GradScaler("cuda") for name in task.optimizers()} \
            if amp == torch.float16 else {}
        self.step = 0
        self.device_seconds = 0.0
        self._loss_scale = 1.0 / (self.accum * dist.world_size)

    # ------------------------------------------------------------------ paths

    @property
    def checkpoint_path(self) -> Path:
        return self.out_dir / "checkpoint.pt"

    @property
    def log_path(self) -> Path:
        return self.out_dir / "loss_log.jsonl"

    # ------------------------------------------------------------------ helpers for tasks

    def sample_generator(self, position: int, purpose: str) -> torch.Generator:
        """The CPU generator of one sample for one purpose (e.g. ``"mask"``, ``"path"``, ``"noise"``)."""
        return item_generator(item_seed(self.config.seed, f"{purpose}/{int(position)}"))

    def autocast(self) -> contextlib.AbstractContextManager:
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.amp_dtype)

    def buffer_average(self, *modules: torch.nn.Module) -> BufferAverage:
        """See :class:`BufferAverage`: call ``.next()`` after each micro-batch's forward, ``.finish()`` after the last."""
        return BufferAverage(modules, self.dist)

    def backward(self, loss: torch.Tensor, optimizer: str) -> None:
        """Backward of one micro-batch's mean loss, scaled so the step's gradient is the global-batch mean."""
        loss = loss * self._loss_scale
        scaler = self.scalers.get(optimizer)
        (scaler.scale(loss) if scaler is not None else loss).backward()

    def optimizer_step(self, name: str, params: Sequence[torch.nn.Parameter]) -> None:
        """Average gradients over ranks, step optimiser ``name`` (and its scheduler), clear gradients."""
        params = [p for p in params if p.requires_grad]
        average_gradients(params, self.dist)
        opt = self.task.optimizers()[name]
        scaler = self.scalers.get(name)
        if scaler is not None:
            scaler.step(opt)
            scaler.update()
        else:
            opt.step()
        sched = self.task.schedulers().get(name)
        if sched is not None:
            sched.step()
        opt.zero_grad(set_to_none=True)

    # ------------------------------------------------------------------ data

    def micro_batches(self, step: int) -> list[MicroBatch]:
        """This rank's micro-batches of optimizer step ``step`` (0-based)."""
        b, m = self.config.batch_size, self.config.micro_batch_size
        out = []
        first = self.dist.rank * self.accum
        orders: dict[int, torch.Tensor] = {}
        for j in range(first, first + self.accum):
            positions = tuple(step * b + j * m + k for k in range(m))
            indices = []
            for p in positions:
                epoch = p // self.n
                if epoch not in orders:
                    orders[epoch] = data_order(self.config.seed, epoch, self.n)
                indices.append(int(orders[epoch][p % self.n]))
            out.append(MicroBatch(positions, tuple(indices)))
        return out

    # ------------------------------------------------------------------ checkpoints

    def state(self) -> dict[str, Any]:
        rng = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}
        if torch.cuda.is_available():
            rng["cuda"] = torch.cuda.get_rng_state_all()
        return {
            "format": CHECKPOINT_FORMAT,
            "identity": json.loads(canonical_json(self.identity)),
            "step": self.step,
            "data_position": self.step * self.config.batch_size,
            "device_seconds": self.device_seconds,
            "modules": {k: m.state_dict() for k, m in self.task.modules().items()},
            "optimizers": {k: o.state_dict() for k, o in self.task.optimizers().items()},
            "schedulers": {k: s.state_dict() for k, s in self.task.schedulers().items()},
            "scalers": {k: s.state_dict() for k, s in self.scalers.items()},
            "rng": rng,
        }

    def save_checkpoint(self) -> None:
        if self.dist.is_main:
            buf = io.BytesIO()
            torch.save(self.state(), buf)
            atomic_write_bytes(self.checkpoint_path, buf.getvalue())
        barrier(self.dist)

    def load_checkpoint(self, path: Path | None = None) -> bool:
        """Restore from ``checkpoint.pt`` if present; returns whether it did. A different experiment is refused."""
        path = path or self.checkpoint_path
        if not path.is_file():
            return False
        try:
            state = torch.load(path, map_location=self.device, weights_only=False)
        except Exception as exc:  # noqa: BLE001 - any unreadable file gets the same one-line story
            raise TrainingError(f"{path}: not a readable training checkpoint ({type(exc).__name__}). Fix: delete it "
                                f"to restart this stage from its beginning") from exc
        if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
            raise TrainingError(f"{path}: not a dcar-bench training checkpoint. Fix: delete it or use another out dir")
        mine = json.loads(canonical_json(self.identity))
        if state["identity"] != mine:
            diff = sorted(k for k in set(mine) | set(state["identity"]) if mine.get(k) != state["identity"].get(k))
            raise TrainingError(f"{path} was written by a different training config (differs in: {', '.join(diff)}). "
                                f"Fix: use a new output directory, or restore the config it was made with")
        for k, m in self.task.modules().items():
            m.load_state_dict(state["modules"][k])
        for k, o in self.task.optimizers().items():
            o.load_state_dict(state["optimizers"][k])
        for k, s in self.task.schedulers().items():
            s.load_state_dict(state["schedulers"][k])
        for k, s in self.scalers.items():
            s.load_state_dict(state["scalers"][k])
        rng = state["rng"]
        torch.set_rng_state(rng["torch"].cpu())
        np.random.set_state(rng["numpy"])
        random.setstate(rng["python"])
        if "cuda" in rng and torch.cuda.is_available():
            torch.cuda.set_rng_state_all([t.cpu() for t in rng["cuda"]])
        self.step = int(state["step"])
        self.device_seconds = float(state["device_seconds"])
        self._truncate_log(self.step)
        return True

    def _truncate_log(self, step: int) -> None:
        """Drop log lines written after the checkpoint (they will be written again, identically)."""
        if not self.dist.is_main or not self.log_path.is_file():
            return
        keep = [ln for ln in self.log_path.read_text().splitlines() if ln.strip() and json.loads(ln)["step"] <= step]
        atomic_write_bytes(self.log_path, "".join(ln + "\n" for ln in keep).encode())

    # ------------------------------------------------------------------ the loop

    def _log(self, metrics: Mapping[str, float]) -> None:
        from harness.records import dumps_record

        if not self.dist.is_main:
            return
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as f:
            f.write(dumps_record(metrics))

    def _mean_over_ranks(self, metrics: Mapping[str, float]) -> dict[str, float]:
        if not self.dist.enabled:
            return dict(metrics)
        import torch.distributed as tdist

        keys = sorted(metrics)
        t = torch.tensor([float(metrics[k]) for k in keys], dtype=torch.float64)
        tdist.all_reduce(t)
        return {k: float(v) / self.dist.world_size for k, v in zip(keys, t.tolist())}

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def run(self, *, stop_after: int | None = None) -> dict[str, Any]:
        """Train to ``config.steps`` (resuming from the checkpoint); ``stop_after`` ends early (tests: a kill)."""
        self.load_checkpoint()
        steps = range(self.step, self.config.steps)
        iterator: Iterator[int] = iter(self.progress(steps) if (self.progress and self.dist.is_main) else steps)
        every = self.config.checkpoint_every
        for step in iterator:
            if stop_after is not None and step >= stop_after:
                break
            self._sync()
            t0 = time.perf_counter()
            metrics = self.task.train_step(step, self.micro_batches(step), self)
            self._sync()
            self.device_seconds += (time.perf_counter() - t0) * self.dist.world_size
            self.step = step + 1
            if self.step % self.config.log_every == 0 or self.step == self.config.steps:
                row = self._mean_over_ranks(metrics)
                self._log({"step": self.step, **{k: row[k] for k in sorted(row)},
                           "device_seconds": round(self.device_seconds, 6)})
            if (every and self.step % every == 0) or self.step == self.config.steps:
                self.save_checkpoint()
        return {"step": self.step, "device_seconds": self.device_seconds, "done": self.step >= self.config.steps}


def read_loss_log(path: str | Path) -> list[dict[str, Any]]:
    """The rows of a ``loss_log.jsonl`` (missing file: none)."""
    path = Path(path)
    if not path.is_file():
        return []
    return [json.loads(ln) for ln in path.read_text().splitlines() if ln.strip()]
