"""The ANCM editor (Pan & Bareinboim, ICML 2024): NCM over V + image mechanism with abduction + labeller.

The steps (:mod:`cfedit.editors.base`): label v = h^(i); abduct u_V ~ P(U_V | V = v) in the NCM and
u_I = abduct(i, v) in the image mechanism; act X = x'; predict v' = F^_{x'}(u_V), i' = f^_I(v', u_I).
Repeating the abduction of u_V gives a distribution of edits. The image mechanism is any registered
backend (:mod:`cfedit.imaging`), chosen by ``ANCMConfig.image``. A fitted editor saves to a folder:
``weights.safetensors``, ``config.json`` and ``graph.cg``.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from cfedit.bounds import count_table
from cfedit.core.config import check_ranges
from cfedit.core.domains import Domains
from cfedit.core.graph import CausalGraph
from cfedit.data import LabelledImages
from cfedit.editors import checkpoint, training
from cfedit.editors.base import CausalEditor, EditItem, EditResult, TrainingRecord, default_device
from cfedit.editors.memory import MemoryEstimate, check_memory
from cfedit.errors import CfeditError, CheckpointError, GraphError
from cfedit.imaging import ImageConfig, Labeller, LabellerConfig, build_mechanism, check_images, config_from_dict
from cfedit.imaging.vae import VAEConfig
from cfedit.ncm import NCM, Exogenous, FitReport, NCMConfig
from cfedit.rng import seeded

FORMAT = "cfedit-ancm"
MAX_COUNT_CELLS = 65_536  # factor configurations up to which the training labels' counts are recorded with the run
VERSION = 2  # 2: the image mechanism is a backend named in config.image.kind; 1 (VAE only) still loads


@dataclass(frozen=True, kw_only=True)
class ANCMConfig:
    """Every setting of an ANCM: the NCM, the image mechanism, the labeller and the image stage's training
    (a settings file's top level; saved in ``config.json``)."""

    ncm: NCMConfig = field(default_factory=NCMConfig)  # the NCM over V and its fit
    image: ImageConfig = field(default_factory=VAEConfig)  # the image mechanism: any backend, named by its kind
    labeller: LabellerConfig = field(default_factory=LabellerConfig)  # the labeller h
    steps: int = 1200  # optimisation steps of the image mechanism and labeller (trained together)
    batch_size: int = 128  # images per step, over all processes
    lr: float = 2e-3  # Adam learning rate of the image stage
    ctf_weight: float | None = None  # weight of the counterfactual-consistency term (0: off; None: 0.1 where the image
    # mechanism edits differentiably, else 0; 1.0 blurs the VAE's null edit)
    ctf_fraction: float = 1.0  # share of each batch the ctf term sees (below 1: faster, less realistic edits)
    ctf_keep: float = 0.0  # weight in the ctf term of the factors an edit keeps (0: only the changed ones count; see ImageStage)
    seed: int = 0  # initialisation, batching and sampling seed
    checkpoint_every: int = 500  # steps between resumable training checkpoints (needs an output folder)
    log_every: int = 250  # steps between progress lines

    def __post_init__(self) -> None:
        from cfedit.imaging import edits_differentiably

        differentiable = edits_differentiably(self.image.kind)
        if self.ctf_weight is None:
            object.__setattr__(self, "ctf_weight", 0.1 if differentiable else 0.0)
        elif self.ctf_weight and not differentiable:
            raise CfeditError(f"the {self.image.kind!r} mechanism cannot edit differentiably: set ctf_weight = 0")
        check_ranges(self, {"steps": (int, 1, 10**7), "batch_size": (int, 1, 16384), "checkpoint_every": (int, 1, 10**7),
                            "log_every": (int, 1, 10**7), "seed": (int, 0, 2**31 - 1), "lr": (float, 1e-9, 10),
                            "ctf_weight": (float, 0, 1e6), "ctf_fraction": (float, 1e-6, 1), "ctf_keep": (float, 0, 1e6)})

    def to_dict(self) -> dict:
        """The dict form, as ``config.json`` and a settings file hold it."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping) -> ANCMConfig:
        """From the dict form (config.json, TOML). A version-1 ``vae`` section is read as ``image``."""
        d = dict(d)
        if "vae" in d:
            if "image" in d:
                raise CfeditError("the config has both 'vae' (old) and 'image' sections; keep 'image'")
            d["image"] = {"kind": "vae", **d.pop("vae")}
        try:
            return cls(ncm=NCMConfig(**d.pop("ncm", {})), image=config_from_dict(d.pop("image", {"kind": "vae"})),
                       labeller=LabellerConfig(**d.pop("labeller", {})), **d)
        except TypeError as e:
            raise CfeditError(f"unknown or malformed setting in the config: {e}") from None

    @classmethod
    def from_toml(cls, path: str | Path | None, defaults: Mapping | None = None) -> ANCMConfig:
        """A config from a TOML file laid out like config.json's ``config``: top-level training settings,
        tables ``[ncm]``, ``[image]`` (with ``kind``) and ``[labeller]``; what it omits keeps its default,
        taken from ``defaults`` (a dict of the same form, e.g. a world's ``editor_settings``) first."""
        import tomllib

        from cfedit.core.files import read_text

        try:
            given = tomllib.loads(read_text(path, "config file")) if path is not None else {}
        except tomllib.TOMLDecodeError as e:
            raise CfeditError(f"config file {path} is not valid TOML: {e}") from None
        except RecursionError:
            raise CfeditError(f"config file {path} is nested too deeply to be a cfedit config") from None
        merged = {k: dict(v) if isinstance(v, Mapping) else v for k, v in (defaults or {}).items()}
        for k, v in given.items():
            if isinstance(v, Mapping) and isinstance(merged.get(k), Mapping):
                if k == "image" and v.get("kind", merged[k].get("kind")) != merged[k].get("kind"):
                    merged[k] = dict(v)  # another backend: the world's settings of this one do not apply
                else:
                    merged[k].update(v)
            else:
                merged[k] = v
        return cls.from_dict(merged)

    def updated(self, *, mechanism: str | None = None, **settings: object) -> ANCMConfig:
        """This config with other top-level settings (None values ignored) and, if ``mechanism`` names
        another backend than ``image.kind``, that backend's default config."""
        from dataclasses import replace

        from cfedit.imaging import edits_differentiably, image_config

        given = {k: v for k, v in settings.items() if v is not None}
        unknown = sorted(set(given) - {f for f in self.to_dict() if f not in ("ncm", "image", "labeller")})
        if unknown:
            raise CfeditError(f"unknown setting(s) {', '.join(unknown)}")
        if mechanism is not None and mechanism != self.image.kind:
            given["image"] = image_config(mechanism)
            if "ctf_weight" not in given and not edits_differentiably(mechanism):
                given["ctf_weight"] = 0.0
        return replace(self, **given)


class ANCM(CausalEditor):
    """An ANCM editor over a causal diagram: ``ncm`` (V), ``image`` (I given V, with abduction), ``labeller``."""

    name = "ancm"
    FORMAT = FORMAT
    keeps_non_descendants = True  # abduction reproduces v; do(X) changes only what X's mechanisms reach

    def __init__(self, graph: CausalGraph, domains: Domains, image_shape: tuple[int, int, int],
                 config: ANCMConfig = ANCMConfig(), device: torch.device | str | None = None):
        if set(graph.nodes) != set(domains.names):
            raise GraphError(f"the graph has factors {sorted(graph.nodes)} but the data has {sorted(domains.names)}")
        self.graph, self.domains, self.config = graph, domains, config
        self.image_shape = tuple(int(x) for x in image_shape)
        self.device = torch.device(device) if device is not None else default_device()
        with seeded(config.seed):  # seeded initialisation without touching the caller's RNG
            self.ncm = NCM(graph, domains, config.ncm).to(self.device)
            self.image = build_mechanism(config.image, domains, self.image_shape).to(self.device)
            self.labeller = Labeller(domains, self.image_shape, config.labeller).to(self.device)
        self.fit_report: dict = {}

    def modules(self) -> dict[str, nn.Module]:
        """The trained parts by name: the NCM, the image mechanism and the labeller."""
        return {"ncm": self.ncm, "image": self.image, "labeller": self.labeller}

    def state_dict(self) -> dict[str, torch.Tensor]:
        """Every weight, prefixed by its part's name (what ``weights.safetensors`` holds)."""
        return {f"{k}.{n}": t.detach().cpu().contiguous() for k, m in self.modules().items() for n, t in m.state_dict().items()}

    def state_dict_meta(self) -> dict[str, torch.Tensor]:
        """The names and tensors of :meth:`state_dict` where they are (a model on the ``meta`` device has no data to copy)."""
        return {f"{k}.{n}": t for k, m in self.modules().items() for n, t in m.state_dict().items()}

    def load_state_dict(self, state: Mapping[str, torch.Tensor]) -> None:
        """Load weights written by :meth:`state_dict`."""
        for k, m in self.modules().items():
            part = {n[len(k) + 1:]: t for n, t in state.items() if n.startswith(k + ".")}
            m.load_state_dict(part)

    @classmethod
    def from_components(cls, graph: CausalGraph, ncm: NCM, image: nn.Module, labeller: Labeller, config: ANCMConfig,
                        fit_report: Mapping | None = None) -> ANCM:
        """An ANCM assembled from fitted parts (shared, not copied): e.g. another NCM over another diagram with
        this editor's image mechanism and labeller, as the Markovian baseline is built."""
        if set(graph.nodes) != set(ncm.domains.names) or ncm.graph != graph:
            raise GraphError(f"the NCM is over {ncm.graph}, not over {graph}")
        model = cls.__new__(cls)
        model.graph, model.domains, model.config = graph, ncm.domains, config
        model.image_shape = tuple(int(x) for x in image.image_shape)
        model.device = next(image.parameters()).device
        model.ncm, model.image, model.labeller = ncm, image, labeller
        model.fit_report = dict(fit_report or {})
        return model

    def fitted_p_v(self) -> np.ndarray:
        """The P(V) of the fitted NCM (exact over its enumerable inputs); a continuous factor has no table
        (a :class:`CfeditError`: its law is a density, drawn by ``ncm.sample``)."""
        if self.domains.continuous_names:
            raise CfeditError(f"{', '.join(self.domains.continuous_names)} continuous: the editor's P(V) is a density, not a "
                              "table (draw from it with ncm.sample)")
        return self.ncm.table()

    @property
    def training_record(self) -> TrainingRecord:
        return TrainingRecord(config=self.config.to_dict(), report=dict(self.fit_report))

    @property
    def label_counts(self) -> np.ndarray | None:
        """How often each factor configuration occurs among the training labels (axes in ``domains.names``
        order), as :meth:`fit` records it with the run; None for a run that does not record them (trained
        before this record existed, or with more than :data:`MAX_COUNT_CELLS` configurations)."""
        rec = self.fit_report.get("label_counts")
        if rec is None:
            return None
        shape = self.domains.shape
        try:
            counts = np.asarray(rec, dtype=np.int64)
        except (TypeError, ValueError, OverflowError):
            counts = None
        if counts is None or counts.shape != (int(np.prod(shape)),) or (counts < 0).any() or counts.sum() == 0:
            raise CheckpointError(f"the run's record of its training labels (config.json fit.label_counts) is not "
                                  f"{int(np.prod(shape)):,} non-negative counts: restore config.json or retrain")
        return counts.reshape(shape)

    # ------------------------------------------------------------------ memory
    @classmethod
    def on_meta(cls, graph: CausalGraph, domains: Domains, image_shape: tuple[int, int, int], config: ANCMConfig) -> ANCM:
        """The editor a config describes, built on torch's ``meta`` device: every shape, no storage."""
        with torch.device("meta"):
            return cls(graph, domains, image_shape, config, device="meta")

    @classmethod
    def estimate_memory(cls, graph: CausalGraph, domains: Domains, image_shape: tuple[int, int, int],
                        config: ANCMConfig = ANCMConfig(), rows: int | None = None, activations: bool = True) -> MemoryEstimate:
        """Bytes the editor of ``config`` needs (:mod:`cfedit.editors.memory`), counted on the ``meta`` device
        without allocating: weights exactly; with ``activations``, a rough figure for one training step, the
        larger of the NCM fit's (``rows`` distinct label rows, at most the ``batch_rows`` a fit step sees; default:
        every factor configuration) and the image stage's (its modules' outputs on a batch of ``batch_size`` images)."""
        model = cls.on_meta(graph, domains, image_shape, config)
        weights = sum(t.numel() * t.element_size() for m in model.modules().values() for t in m.state_dict().values())
        trainable = sum(p.numel() * p.element_size() for m in model.modules().values() for p in m.parameters())
        act = 0
        if activations:
            n_rows = config.ncm.batch_rows if rows is None and domains.continuous_names else \
                int(np.prod(domains.shape)) if rows is None else int(rows)
            act = max(model.ncm.fit_activation_bytes(min(n_rows, config.ncm.batch_rows)), _image_step_activations(model))
        return MemoryEstimate(weights=weights, trainable=trainable, activations=act)

    # ------------------------------------------------------------------ training
    @classmethod
    def fit(cls, graph: CausalGraph, dataset: LabelledImages, config: ANCMConfig = ANCMConfig(),
            out_dir: str | Path | None = None, resume: bool = True, log: training.Log | None = training.default_log) -> ANCM:
        """Fit the NCM to the labels, then the image mechanism and labeller to the images.

        Under ``torchrun`` (WORLD_SIZE > 1) the image stage uses DistributedDataParallel, each process
        taking its share of every batch; only rank 0 writes and logs. With ``out_dir``, a resumable state is
        written every ``checkpoint_every`` steps and the final editor is saved there.

        Args:
            graph: the causal diagram over the dataset's factors.
            dataset: labelled images (:class:`~cfedit.data.LabelledImages`: from a world, a folder or CelebA).
            config: every setting (:class:`ANCMConfig`).
            out_dir: where to save the editor and its resumable training state (None: nothing written).
            resume: continue from ``out_dir``'s training state when there is one.
            log: receives progress lines (default: the ``cfedit`` logger; None: silent).

        Returns:
            The fitted editor.

        Raises:
            CfeditError: settings or data that do not fit (e.g. an image size the mechanism cannot take), a config
                whose estimated memory (:meth:`estimate_memory`) exceeds what is available, or a training state
                written for another config, graph or data.
            CheckpointError: ``out_dir`` in use by another training (its lock names the holder).
        """
        import torch.distributed as dist

        rank, world = training.init_distributed()
        say: training.Log = log if (log is not None and rank == 0) else (lambda s: None)
        rows = len(np.unique(np.stack([np.asarray(dataset.labels[k]) for k in dataset.domains.names], axis=1), axis=0))
        check_memory(cls.estimate_memory(graph, dataset.domains, dataset.image_shape, config, rows=rows), default_device(),
                     "the editor of this config", training=True)
        _warn_if_incompatible(graph, dataset, say)
        out = Path(out_dir) if out_dir is not None else None
        with training.run_lock(out if rank == 0 else None):
            model = cls._fit(graph, dataset, config, out, resume, rank, world, say)
        if world > 1:
            dist.barrier()
        return model

    @classmethod
    def _fit(cls, graph: CausalGraph, dataset: LabelledImages, config: ANCMConfig, out: Path | None, resume: bool,
             rank: int, world: int, say: training.Log) -> ANCM:
        with seeded(config.seed):  # training noise seeded by config.seed; the caller's RNG untouched
            model = cls(graph, dataset.domains, dataset.image_shape, config)
            images = torch.as_tensor(dataset.images)
            labels = {k: torch.as_tensor(v) for k, v in dataset.labels.items()}
            data = training.data_digest(images, labels)
            opt, sched = training.optimiser(model)
            start, ncm_done = 0, False
            if out is not None and resume and (out / training.STATE_FILE).is_file():
                start, ncm_done = training.load_state(model, opt, sched, out / training.STATE_FILE, data)
                say(f"resuming from {out / training.STATE_FILE} at step {start}/{config.steps}")
                torch.manual_seed(config.seed * 1_000_003 + start)  # fresh noise, not step 0's draws again
            elif out is not None and rank == 0:
                # a fresh training: the folder's old editor goes first, so that an interrupted run never
                # leaves an old editor beside a new training state
                (out / training.STATE_FILE).unlink(missing_ok=True)
                if checkpoint.remove_editor(out):
                    say(f"training afresh into {out}: its previous editor was removed")
            # -- stage 1: the NCM (tiny, full batch; every process fits the same model from the same seed)
            if ncm_done:
                model.ncm.report = FitReport(model.ncm.tv(dataset.labels), float("nan"), config.ncm.steps, 0.0)
            else:
                t0 = time.time()
                say(f"ncm: fitting P(V) over {len(dataset):,} labels ({config.ncm.steps} steps)")
                rep = model.ncm.fit(dataset.labels, log=say)
                fit = f"TV to the data's P(V) = {rep.tv:.4f}" if np.isfinite(rep.tv) else f"mean negative log-likelihood {rep.nll:.4f}"
                say(f"ncm: {config.ncm.steps} steps in {time.time() - t0:.1f}s, {fit}")
                if out is not None and rank == 0:
                    training.save_state(model, opt, sched, out / training.STATE_FILE, start, True, data)
            # -- stage 2: image mechanism + labeller
            job = training.TrainingJob(images=images, labels=labels, data=data, out=out, rank=rank, world=world, log=say)
            training.train_image_stage(model, opt, sched, job, start)
            for m in model.modules().values():
                m.eval()
            model.fit_report = {"ncm_tv": model.ncm.report.tv if model.ncm.report else None, "steps": config.steps,
                                "processes": world, "mechanism": config.image.kind,
                                **_label_counts(dataset.labels, dataset.domains)}
            if out is not None and rank == 0:
                model.save(out)
                training.save_state(model, opt, sched, out / training.STATE_FILE, config.steps, True, data)
        return model

    # ------------------------------------------------------------------ editing: label / abduct / predict
    def label(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """Step 1: v = h^(i)."""
        return self.labeller.predict(images)

    def abduct(self, images: torch.Tensor, v: Mapping[str, torch.Tensor], n_samples: int,
               generator: torch.Generator) -> tuple[Exogenous, torch.Tensor]:
        """Step 2: u_V ~ P(U_V | V = v) (n_samples per image) and u_I = abduct(i, v) (repeated to match)."""
        u_v = self.ncm.posterior(v, n_samples, generator)
        u_i = self.image.abduct(images, v).repeat_interleave(n_samples, dim=0)
        return u_v, u_i

    def predict(self, u_v: Exogenous, u_i: torch.Tensor, do: Mapping[str, int]) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """Step 4: v' = F^_{x'}(u_V) and i' = f^_I(v', u_I)."""
        v_cf = self.ncm.evaluate(u_v, do)
        return v_cf, self.image.generate_distinct(v_cf, u_i)

    @torch.no_grad()
    def edit_each(self, items: list[EditItem]) -> list[EditResult]:
        """The items' edits in one pass of each network (:meth:`Editor.edit_each`): labels, abduction, action and
        prediction for all of them together, every item drawing its U_V from its own generator in the order its
        lone :meth:`~cfedit.editors.base.Editor.edit` does. Rows are computed in a larger batch than alone, so an
        item's pixels agree with its lone edit up to float rounding (docs: guides/web-editor.md, "Batching")."""
        if len(items) <= 1 or (self.ncm.config.method != "exact" and self.ncm.cliques):
            return super().edit_each(items)  # "mc" draws its support from the generator: one pass per item
        for it in items:
            if it.k < 1:
                raise CfeditError(f"n_samples must be at least 1, got {it.k}")
        x = check_images(torch.as_tensor(np.stack([np.asarray(it.image) for it in items])), self.image_shape)
        x = x.to(self.device, torch.float32)
        dos = [self.act(it.do) for it in items]
        ks = [int(it.k) for it in items]
        unread = [i for i, it in enumerate(items) if it.labels is None]
        read = self.label(x[unread]) if unread else {}
        rows: list[dict[str, torch.Tensor]] = []
        for i, it in enumerate(items):
            if it.labels is None:
                rows.append({f: read[f][unread.index(i)][None] for f in self.domains.names})
            else:
                rows.append({f: t.to(self.device) for f, t in self.encode_labels({f: [c] for f, c in it.labels.items()}, 1).items()})
        v = {f: torch.cat([r[f] for r in rows]) for f in self.domains.names}
        u_v = self.ncm.posterior_each(v, ks, [torch.Generator().manual_seed(it.seed) for it in items])
        u_i = self.image.abduct(x, v).repeat_interleave(torch.tensor(ks, device=self.device), dim=0)
        v_cf = self.ncm.evaluate_each(u_v, dos, ks)
        i_cf = self.image.generate_distinct(v_cf, u_i).cpu().numpy()
        out, start = [], 0
        for i, k in enumerate(ks):
            part = slice(start, start + k)
            out.append(EditResult(i_cf[part].reshape(1, k, *self.image_shape),
                                  {f: t[part].cpu().numpy().reshape(1, k) for f, t in v_cf.items()},
                                  {f: rows[i][f].cpu().numpy() for f in self.domains.names}))
            start += k
        return out

    # ------------------------------------------------------------------ save / load
    def save(self, folder: str | Path, dtype: torch.dtype | None = None) -> Path:
        """Write ``weights.safetensors``, ``config.json`` and ``graph.cg`` into ``folder`` (atomically each).

        Args:
            folder: the checkpoint folder (created if missing).
            dtype: store the floating-point weights at this precision (e.g. ``torch.float16``; loading casts them
                back to the model's); None keeps the model's.

        Returns:
            The folder.
        """
        cfg = {"format": FORMAT, "version": VERSION, "domains": self.domains.as_dict(), "image_shape": list(self.image_shape),
               "config": self.config.to_dict(), "fit": self.fit_report}
        state = self.state_dict()
        if dtype is not None:
            state = {k: t.to(dtype) if t.is_floating_point() else t for k, t in state.items()}
        return checkpoint.write_editor(Path(folder), state, FORMAT, VERSION, cfg, self.graph.to_cg())

    @classmethod
    def load(cls, folder: str | Path, device: torch.device | str | None = None, *, allow_unverified: bool = False) -> ANCM:
        """Load an editor saved by :meth:`save`, after every integrity check, before a tensor is read.

        Args:
            folder: the editor's folder (``weights.safetensors``, ``config.json``, ``graph.cg``).
            device: where to put it (default: CUDA when present, else CPU).
            allow_unverified: load a version-1 folder, written before checkpoints recorded digests, whose
                integrity cannot be checked (``cfedit migrate`` rewrites such a folder once with digests).

        Returns:
            The editor, ready to :meth:`~cfedit.editors.base.Editor.edit`.

        Raises:
            CheckpointError: a folder that is corrupt, truncated, altered, foreign, of an unknown version, of
                version 1 without ``allow_unverified``, or an unfinished training (see :mod:`cfedit.editors.checkpoint`).
            CfeditError: an editor too large for the memory available.
        """
        folder = Path(folder)
        target = torch.device(device) if device is not None else default_device()

        def parts(cfg: dict, graph_text: str) -> tuple[CausalGraph, Domains, ANCMConfig, tuple[int, int, int]]:
            try:
                return (CausalGraph.parse(graph_text), Domains(cfg["domains"]), ANCMConfig.from_dict(cfg["config"]),
                        tuple(cfg["image_shape"]))
            except (CfeditError, KeyError, TypeError, ValueError, RecursionError) as e:
                raise CheckpointError(f"{folder} holds an unreadable config or graph: {str(e)[:300]}") from None

        def expected(cfg: dict, graph_text: str) -> dict[str, tuple[str, tuple[int, ...]]]:
            """The tensors the config's model holds, counted on the meta device; refused if it cannot fit in memory."""
            graph, domains, config, shape = parts(cfg, graph_text)
            check_memory(cls.estimate_memory(graph, domains, shape, config, activations=False), target,
                         f"the editor in {folder}", training=False)
            return checkpoint.tensor_layout(cls.on_meta(graph, domains, shape, config).state_dict_meta())

        cfg, graph_text, state = checkpoint.read_editor(folder, FORMAT, (1, VERSION), allow_unverified=allow_unverified,
                                                        expected=expected)
        graph, domains, config, shape = parts(cfg, graph_text)
        try:
            model = cls(graph, domains, shape, config, device)
        except (CfeditError, KeyError, TypeError, ValueError) as e:
            raise CheckpointError(f"{folder} holds an unreadable config or graph: {str(e)[:300]}") from None
        try:
            model.load_state_dict(state)
        except RuntimeError as e:
            raise CheckpointError(f"{folder / 'weights.safetensors'} does not match its config: {str(e)[:300]}") from None
        model.fit_report = cfg.get("fit", {})
        if not isinstance(model.fit_report, dict):
            raise CheckpointError(f"{folder / 'config.json'}: its training report is not a table")
        _ = model.label_counts  # a malformed record of the training labels fails at load, not at an edit
        for m in model.modules().values():
            m.eval()
        return model

    @classmethod
    def migrate(cls, folder: str | Path) -> bool:
        """Rewrite an editor folder of checkpoint version 1 (which recorded no digests) as the current version,
        recording its digests, so that it loads with every integrity check from now on; True if it was
        rewritten, False if it already records them (it is then loaded with every check, and left as it is).
        Its files are trusted as they are: migrate only a run whose origin you trust."""
        folder = Path(folder)
        if checkpoint.recorded_version(folder) != 1:
            cls.load(folder, device="cpu")
            return False
        cls.load(folder, device="cpu", allow_unverified=True).save(folder)
        return True


def _image_step_activations(model: ANCM) -> int:
    """A rough figure for one image-stage training step's activations: the bytes of every leaf module's output
    on a batch of ``batch_size`` images, run on the ``meta`` device (no storage). 0 when a backend cannot run
    there (e.g. it reads a value off a tensor)."""
    from cfedit.editors.training import ImageStage

    cfg, total = model.config, 0

    def count(module: nn.Module, inputs: object, output: object) -> None:
        nonlocal total
        if isinstance(output, torch.Tensor):
            total += output.numel() * output.element_size()

    stage = ImageStage(model.image, model.labeller, cfg.ctf_weight, cfg.ctf_fraction, cfg.ctf_keep)
    hooks = [m.register_forward_hook(count) for m in stage.modules() if not list(m.children())]
    validate = torch.distributions.Distribution._validate_args  # checking a distribution's arguments reads values
    torch.distributions.Distribution.set_default_validate_args(False)
    try:
        with torch.device("meta"):
            images = torch.empty(cfg.batch_size, *model.image_shape)
            v = {k: torch.zeros(cfg.batch_size, dtype=torch.long) for k in model.domains.names}
            stage(images, v)
    except (RuntimeError, NotImplementedError, TypeError, ValueError):
        total = 0
    finally:
        torch.distributions.Distribution.set_default_validate_args(validate)
        for h in hooks:
            h.remove()
    return total


def _warn_if_incompatible(graph: CausalGraph, dataset: LabelledImages, say: training.Log) -> None:
    """Say so when the training labels' P(V) is one no model over the graph produces (e.g. an instrumental
    inequality fails): the check `cfedit bounds` refuses such labels with (:func:`cfedit.bounds.check_compatible`).
    The NCM then fits the closest law it can, and bounds read off the run are not those of the labels."""
    from cfedit.bounds import check_compatible, empirical_table
    from cfedit.errors import DataError, QueryError

    if dataset.domains.continuous_names or int(np.prod(dataset.domains.shape)) > MAX_COUNT_CELLS:
        return  # continuous labels have no table to check
    try:
        check_compatible(graph, dataset.domains, empirical_table(dataset.labels, dataset.domains))
    except DataError as e:
        say(f"warning: the training labels do not fit the graph, so `cfedit bounds` refuses them: {e} "
            "Training goes on; the NCM fits the closest law the graph allows")
    except QueryError:  # a component too large to check exactly: nothing is said
        pass


def _label_counts(labels: Mapping[str, np.ndarray], domains: Domains) -> dict:
    """``{"label_counts": [...]}``: the training labels' count of each factor configuration (row-major over
    ``domains.names``), kept with the run so that later queries can be checked against the data's support;
    empty when there are more than :data:`MAX_COUNT_CELLS` configurations, or a factor is continuous."""
    if domains.continuous_names:
        return {}
    cells = int(np.prod(domains.shape))
    if cells > MAX_COUNT_CELLS:
        return {}
    return {"label_counts": count_table(labels, domains).ravel().tolist()}
