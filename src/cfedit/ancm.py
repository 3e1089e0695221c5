"""The ANCM editor (Pan & Bareinboim, ICML 2024): NCM over V + image mechanism with abduction + labeller.

Editing an image i under do(X = x') (DESIGN.md sec. 1):

1. label:   v = h^(i), or the labels the caller gives;
2. abduct:  u_V ~ P(U_V | V = v) in the NCM; u_I = abduct(i, v);
3. act:     set X = x' (several factors at once allowed);
4. predict: v' = F^_{x'}(u_V); i' = f^_I(v', u_I).

Repeating step 2 gives a distribution of edits. Training runs in one process, or under ``torchrun`` with
DistributedDataParallel (gloo on CPU, NCCL on GPUs); it checkpoints its state and resumes after an
interruption. A fitted editor saves to a folder: ``weights.safetensors``, ``config.json``, ``graph.cg``.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from cfedit.data import LabelledImages
from cfedit.core.domains import Domains
from cfedit.errors import CfeditError, CheckpointError, DataError, GraphError
from cfedit.core.graph import CausalGraph
from cfedit.imaging import ConditionalVAE, Labeller, LabellerConfig, VAEConfig, check_images
from cfedit.ncm import NCM, Exogenous, FitReport, NCMConfig

FORMAT = "cfedit-ancm"
VERSION = 1
_STATE = "train_state.safetensors"


@dataclass(frozen=True, kw_only=True)
class ANCMConfig:
    ncm: NCMConfig = field(default_factory=NCMConfig)  # the NCM over V and its fit
    vae: VAEConfig = field(default_factory=VAEConfig)  # the image mechanism
    labeller: LabellerConfig = field(default_factory=LabellerConfig)  # the labeller h
    steps: int = 3000  # optimisation steps of the image mechanism and labeller (trained together)
    batch_size: int = 128  # images per step, over all processes
    lr: float = 2e-3  # Adam learning rate of the image stage
    ctf_weight: float = 0.1  # weight of the counterfactual-consistency term (0: plain VAE; 1.0 blurs the null edit)
    ctf_fraction: float = 1.0  # share of each batch the ctf term sees (0.25: demo 228 s not 374 s, realism FD 94 not 58)
    seed: int = 0  # initialisation, batching and sampling seed
    checkpoint_every: int = 500  # steps between resumable training checkpoints (needs an output folder)
    log_every: int = 250  # steps between progress lines

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping) -> ANCMConfig:
        try:
            return cls(
                ncm=NCMConfig(**d.get("ncm", {})), vae=VAEConfig(**d.get("vae", {})),
                labeller=LabellerConfig(**d.get("labeller", {})),
                **{k: v for k, v in d.items() if k not in ("ncm", "vae", "labeller")},
            )
        except TypeError as e:
            raise CheckpointError(f"unknown setting in the config: {e}") from None


@dataclass(frozen=True)
class EditResult:
    """Edits of N images with k samples each: ``images`` (N, k, C, H, W), ``factors`` (N, k) codes per
    factor, and ``factual`` (N,) codes used as v (the given labels or the labeller's reading)."""

    images: np.ndarray
    factors: dict[str, np.ndarray]
    factual: dict[str, np.ndarray]


def default_device() -> torch.device:
    """CUDA when present (this process's local GPU under torchrun), else CPU."""
    if torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
    return torch.device("cpu")


class ANCM:
    """An ANCM editor over a causal diagram: ``ncm`` (V), ``image`` (I given V, with abduction), ``labeller``."""

    def __init__(self, graph: CausalGraph, domains: Domains, image_shape: tuple[int, int, int],
                 config: ANCMConfig = ANCMConfig(), device: torch.device | str | None = None):
        if set(graph.nodes) != set(domains.names):
            raise GraphError(f"the graph has factors {sorted(graph.nodes)} but the data has {sorted(domains.names)}")
        self.graph, self.domains, self.config = graph, domains, config
        self.image_shape = tuple(int(x) for x in image_shape)
        self.device = torch.device(device) if device is not None else default_device()
        torch.manual_seed(config.seed)
        self.ncm = NCM(graph, domains, config.ncm).to(self.device)
        self.image = ConditionalVAE(domains, self.image_shape, config.vae).to(self.device)
        self.labeller = Labeller(domains, self.image_shape, config.labeller).to(self.device)
        self.fit_report: dict = {}

    def modules(self) -> dict[str, nn.Module]:
        return {"ncm": self.ncm, "image": self.image, "labeller": self.labeller}

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {f"{k}.{n}": t.detach().cpu().contiguous() for k, m in self.modules().items() for n, t in m.state_dict().items()}

    def load_state_dict(self, state: Mapping[str, torch.Tensor]) -> None:
        for k, m in self.modules().items():
            part = {n[len(k) + 1:]: t for n, t in state.items() if n.startswith(k + ".")}
            m.load_state_dict(part)

    # ------------------------------------------------------------------ training
    @classmethod
    def fit(cls, graph: CausalGraph, dataset: LabelledImages, config: ANCMConfig = ANCMConfig(),
            out_dir: str | Path | None = None, resume: bool = True, log: Callable[[str], None] | None = print) -> ANCM:
        """Fit the NCM to the labels, then the image mechanism and labeller to the images.

        Under ``torchrun`` (WORLD_SIZE > 1) the image stage uses DistributedDataParallel, each process
        taking its share of every batch; only rank 0 writes. With ``out_dir``, a resumable state is
        written every ``checkpoint_every`` steps and the final editor is saved there.
        """
        import torch.distributed as dist

        rank, world = _init_distributed()
        log = log if (log is not None and rank == 0) else (lambda s: None)
        model = cls(graph, dataset.domains, dataset.image_shape, config)
        images = torch.as_tensor(dataset.images)
        labels = {k: torch.as_tensor(v) for k, v in dataset.labels.items()}
        out = Path(out_dir) if out_dir is not None else None
        params = list(model.image.parameters()) + list(model.labeller.parameters())
        opt = torch.optim.Adam(params, lr=config.lr)
        start, ncm_done = 0, False
        if out is not None and resume and (out / _STATE).is_file():
            start, ncm_done = _load_state(model, opt, out / _STATE)
            log(f"resuming from {out / _STATE} at step {start}/{config.steps}")
        # -- stage 1: the NCM (tiny, full batch; every process fits the same model from the same seed)
        if ncm_done:
            model.ncm.report = FitReport(model.ncm.tv(dataset.labels), float("nan"), config.ncm.steps, 0.0)
        else:
            t0 = time.time()
            rep = model.ncm.fit(dataset.labels)
            log(f"ncm: {config.ncm.steps} steps in {time.time() - t0:.1f}s, TV to the data's P(V) = {rep.tv:.4f}")
            if out is not None and rank == 0:
                _save_state(model, opt, out / _STATE, start, True)
        # -- stage 2: image mechanism + labeller
        trainer: nn.Module = _ImageStage(model.image, model.labeller, config.ctf_weight, config.ctf_fraction)
        if world > 1:
            trainer = nn.parallel.DistributedDataParallel(trainer, device_ids=[model.device.index] if model.device.type == "cuda" else None)
        sched = _lr_at(config)
        t0, first, loss_avg = time.time(), start, None
        per_rank = max(1, config.batch_size // world)
        for step in range(start, config.steps):
            g = torch.Generator().manual_seed(config.seed * 1_000_003 + step)
            idx = torch.randint(0, len(images), (per_rank * world,), generator=g)[rank::world]
            xb = images[idx].to(model.device)
            vb = {k: t[idx].to(model.device) for k, t in labels.items()}
            for grp in opt.param_groups:
                grp["lr"] = sched(step)
            loss = trainer(xb, vb)
            opt.zero_grad()
            loss.backward()
            opt.step()
            loss_avg = loss.item() if loss_avg is None else 0.95 * loss_avg + 0.05 * loss.item()
            done = step + 1
            if done % config.log_every == 0 or done == config.steps:
                rate = (time.time() - t0) / (done - first)
                log(f"image step {done}/{config.steps}  loss {loss_avg:.2f}  "
                    f"{time.time() - t0:.0f}s elapsed, ~{rate * (config.steps - done):.0f}s left")
            if out is not None and rank == 0 and (done % config.checkpoint_every == 0) and done < config.steps:
                _save_state(model, opt, out / _STATE, done, True)
        model.ncm.eval(), model.image.eval(), model.labeller.eval()
        model.fit_report = {"ncm_tv": model.ncm.report.tv if model.ncm.report else None, "steps": config.steps,
                            "processes": world}
        if out is not None and rank == 0:
            model.save(out)
            _save_state(model, opt, out / _STATE, config.steps, True)
        if world > 1:
            dist.barrier()
        return model

    # ------------------------------------------------------------------ editing: abduct / act / predict
    def label(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """Step 1: v = h^(i)."""
        return self.labeller.predict(images)

    def abduct(self, images: torch.Tensor, v: Mapping[str, torch.Tensor], n_samples: int,
               generator: torch.Generator) -> tuple[Exogenous, torch.Tensor]:
        """Step 2: u_V ~ P(U_V | V = v) (n_samples per image) and u_I = abduct(i, v) (repeated to match)."""
        u_v = self.ncm.posterior(v, n_samples, generator)
        u_i = self.image.abduct(images, v).repeat_interleave(n_samples, dim=0)
        return u_v, u_i

    def act(self, do: Mapping[str, object]) -> dict[str, int]:
        """Step 3: the intervention do(X = x') as integer codes (names or codes accepted, checked)."""
        if not do:
            return {}
        return self.domains.encode(do)

    def predict(self, u_v: Exogenous, u_i: torch.Tensor, do: Mapping[str, int]) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """Step 4: v' = F^_{x'}(u_V) and i' = f^_I(v', u_I)."""
        v_cf = self.ncm.evaluate(u_v, do)
        return v_cf, self.image.generate(v_cf, u_i)

    @torch.no_grad()
    def edit(self, images: np.ndarray | torch.Tensor, do: Mapping[str, object], n_samples: int = 1,
             labels: Mapping[str, object] | None = None, seed: int = 0, batch_size: int = 1024) -> EditResult:
        """Counterfactual edits of ``images`` (N, C, H, W) in [0, 1] under ``do`` (e.g. ``{"C": "green"}``).

        ``do`` may be empty (the null edit). ``labels`` (codes or value names per factor) replace the
        labeller's reading. Returns ``n_samples`` edits per image.
        """
        if n_samples < 1:
            raise CfeditError(f"n_samples must be at least 1, got {n_samples}")
        x = torch.as_tensor(np.asarray(images) if not isinstance(images, torch.Tensor) else images)
        check_images(x, self.image_shape)
        x_do = self.act(do)
        v_all = self._labels(labels, len(x)) if labels is not None else None
        g = torch.Generator().manual_seed(seed)
        out_i, out_v, fact = [], [], []
        for s in range(0, len(x), batch_size):
            xb = x[s:s + batch_size].to(self.device, torch.float32)
            vb = self.label(xb) if v_all is None else {k: t[s:s + batch_size].to(self.device) for k, t in v_all.items()}
            u_v, u_i = self.abduct(xb, vb, n_samples, g)
            v_cf, i_cf = self.predict(u_v, u_i, x_do)
            out_i.append(i_cf.cpu().numpy().reshape(len(xb), n_samples, *self.image_shape))
            out_v.append({k: t.cpu().numpy().reshape(len(xb), n_samples) for k, t in v_cf.items()})
            fact.append({k: t.cpu().numpy() for k, t in vb.items()})
        cat = lambda parts: {k: np.concatenate([p[k] for p in parts]) for k in self.domains.names}  # noqa: E731
        return EditResult(np.concatenate(out_i), cat(out_v), cat(fact))

    def _labels(self, labels: Mapping[str, object], n: int) -> dict[str, torch.Tensor]:
        out = {}
        for k in labels:
            self.domains.check(k)
        for k in self.domains.names:
            if k not in labels:
                raise DataError(f"labels lack factor {k!r}; give all of {', '.join(self.domains.names)} or none")
            vals = np.atleast_1d(np.asarray(labels[k], dtype=object))
            codes = np.asarray([self.domains.code(k, x.item() if hasattr(x, "item") else x) for x in vals], dtype=np.int64)
            if len(codes) != n:
                raise DataError(f"{len(codes)} labels of {k} for {n} images")
            out[k] = torch.as_tensor(codes)
        return out

    # ------------------------------------------------------------------ save / load
    def save(self, folder: str | Path) -> Path:
        """Write ``weights.safetensors``, ``config.json`` and ``graph.cg`` into ``folder`` (atomically each)."""
        from safetensors.torch import save

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        meta = {"format": FORMAT, "version": str(VERSION)}
        _atomic_write(folder / "weights.safetensors", save(self.state_dict(), metadata=meta))
        cfg = {"format": FORMAT, "version": VERSION, "domains": self.domains.as_dict(), "image_shape": list(self.image_shape),
               "config": self.config.to_dict(), "fit": self.fit_report}
        _atomic_write(folder / "config.json", json.dumps(cfg, indent=2).encode())
        _atomic_write(folder / "graph.cg", self.graph.to_cg().encode())
        return folder

    @classmethod
    def load(cls, folder: str | Path, device: torch.device | str | None = None) -> ANCM:
        """Load an editor saved by :meth:`save`; anything corrupt or foreign raises :class:`CheckpointError`."""
        from safetensors import safe_open
        from safetensors.torch import load as load_bytes

        folder = Path(folder)
        if not folder.is_dir():
            raise CheckpointError(f"no editor at {folder}: not a folder")
        for name in ("weights.safetensors", "config.json", "graph.cg"):
            if not (folder / name).is_file():
                raise CheckpointError(f"{folder} is not an ANCM checkpoint: {name} is missing")
        try:
            cfg = json.loads((folder / "config.json").read_text())
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise CheckpointError(f"{folder / 'config.json'} is corrupt: {e}") from None
        if not isinstance(cfg, dict) or cfg.get("format") != FORMAT:
            raise CheckpointError(f"{folder / 'config.json'} was not written by the ANCM editor")
        if cfg.get("version") != VERSION:
            raise CheckpointError(f"{folder} has checkpoint version {cfg.get('version')}; this cfedit reads {VERSION}")
        try:
            graph = CausalGraph.parse((folder / "graph.cg").read_text())
            domains = Domains(cfg["domains"])
            config = ANCMConfig.from_dict(cfg["config"])
            model = cls(graph, domains, tuple(cfg["image_shape"]), config, device)
        except (CfeditError, KeyError, TypeError, ValueError, UnicodeDecodeError) as e:
            raise CheckpointError(f"{folder} holds an unreadable config or graph: {e}") from None
        raw = (folder / "weights.safetensors").read_bytes()
        try:
            state = load_bytes(raw)
            with safe_open(folder / "weights.safetensors", framework="pt") as f:
                meta = f.metadata() or {}
        except Exception as e:  # safetensors raises its own error types for bad headers
            raise CheckpointError(f"{folder / 'weights.safetensors'} is corrupt: {e}") from None
        if meta.get("format") != FORMAT:
            raise CheckpointError(f"{folder / 'weights.safetensors'} was not written by the ANCM editor")
        try:
            model.load_state_dict(state)
        except RuntimeError as e:
            raise CheckpointError(f"{folder / 'weights.safetensors'} does not match its config: {str(e)[:300]}") from None
        model.fit_report = cfg.get("fit", {})
        for m in model.modules().values():
            m.eval()
        return model


# ---------------------------------------------------------------------- training helpers
class _ImageStage(nn.Module):
    """One module for DDP: the image mechanism's and labeller's losses on a batch (per pixel / per image),
    plus the counterfactual-consistency term: the abducted u_I decoded with resampled factors v' must read
    as v' to the labeller, held fixed for this term (its weights detached) so that the decoder cannot
    satisfy it by degrading the labeller. Only the factors that changed count, so that a faithful
    reconstruction of an ambiguous image is not pushed towards a prototype of its label."""

    def __init__(self, image: ConditionalVAE, labeller: Labeller, ctf_weight: float = 0.0, ctf_fraction: float = 1.0):
        super().__init__()
        if not 0.0 < ctf_fraction <= 1.0:
            raise CfeditError(f"ctf_fraction must be in (0, 1], got {ctf_fraction}")
        self.image, self.labeller, self.ctf_weight, self.ctf_fraction = image, labeller, ctf_weight, ctf_fraction

    def forward(self, images: torch.Tensor, v: Mapping[str, torch.Tensor]) -> torch.Tensor:
        loss = self.image.loss(images, v) / images[0].numel() + self.labeller.loss(images, v)
        if self.ctf_weight > 0:
            n = max(1, round(self.ctf_fraction * len(images)))  # batches are drawn at random: the first n are a random share
            loss = loss + self.ctf_weight * self._counterfactual_loss(images[:n], {k: t[:n] for k, t in v.items()})
        return loss

    def _counterfactual_loss(self, images: torch.Tensor, v: Mapping[str, torch.Tensor]) -> torch.Tensor:
        domains = self.image.domains
        v_new = {k: torch.randint(0, domains.size(k), (len(images),), device=images.device) for k in domains.names}
        u = self.image.encode(images, v)[0]
        edits = torch.sigmoid(self.image.decode_logits(v_new, u))
        frozen = {n: p.detach() for n, p in self.labeller.named_parameters()}
        read = torch.func.functional_call(self.labeller, frozen, (edits,))
        total = images.new_zeros(())
        for k in domains.names:
            changed = (v_new[k] != torch.as_tensor(v[k], device=images.device)).float()
            total = total - (read[k].log_prob(v_new[k]) * changed).sum() / len(images)
        return total


def _lr_at(config: ANCMConfig) -> Callable[[int], float]:
    """Cosine decay with a short warm-up; a function of the step only, so resuming changes nothing."""
    warm = max(1, config.steps // 50)

    def lr(step: int) -> float:
        if step < warm:
            return config.lr * (step + 1) / warm
        return config.lr * 0.5 * (1 + math.cos(math.pi * (step - warm) / max(1, config.steps - warm)))

    return lr


def _init_distributed() -> tuple[int, int]:
    import torch.distributed as dist

    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1
    if not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return dist.get_rank(), dist.get_world_size()


def _atomic_write(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _save_state(model: ANCM, opt: torch.optim.Optimizer, path: Path, step: int, ncm_done: bool) -> None:
    """The resumable training state: weights, Adam moments, step; config beside in the metadata."""
    from safetensors.torch import save

    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
    sd = opt.state_dict()
    for i, st in sd["state"].items():
        for name, t in st.items():
            tensors[f"opt.{i}.{name}"] = torch.as_tensor(t).detach().cpu().contiguous()
    meta = {"format": FORMAT + "-train", "step": str(step), "ncm_done": str(int(ncm_done)),
            "config": json.dumps(model.config.to_dict(), sort_keys=True), "domains": json.dumps(model.domains.as_dict()),
            "graph": model.graph.to_line()}
    _atomic_write(path, save(tensors, metadata=meta))


def _load_state(model: ANCM, opt: torch.optim.Optimizer, path: Path) -> tuple[int, bool]:
    from safetensors import safe_open
    from safetensors.torch import load as load_bytes

    try:
        state = load_bytes(path.read_bytes())
        with safe_open(path, framework="pt") as f:
            meta = f.metadata() or {}
    except Exception as e:
        raise CheckpointError(f"{path} is corrupt ({e}); delete it or train into a new folder") from None
    if meta.get("format") != FORMAT + "-train":
        raise CheckpointError(f"{path} is not an ANCM training state")
    if (meta.get("config") != json.dumps(model.config.to_dict(), sort_keys=True)
            or meta.get("graph") != model.graph.to_line() or meta.get("domains") != json.dumps(model.domains.as_dict())):
        raise CheckpointError(f"{path} was written by a run with another config, graph or data; "
                              "train into a new folder or pass resume=False (--no-resume)")
    try:
        model.load_state_dict({k[6:]: v.to(model.device) for k, v in state.items() if k.startswith("model.")})
        sd = opt.state_dict()
        for key, t in state.items():
            if key.startswith("opt."):
                _, i, name = key.split(".", 2)
                sd["state"].setdefault(int(i), {})[name] = t if name == "step" else t.to(model.device)
        opt.load_state_dict(sd)
    except (RuntimeError, ValueError, KeyError) as e:
        raise CheckpointError(f"{path} does not match this model: {str(e)[:300]}") from None
    return int(meta.get("step", 0)), meta.get("ncm_done") == "1"
