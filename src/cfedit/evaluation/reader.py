"""The reader of a user-data evaluation: factors read off images by a network trained apart from the editor.

:class:`Reader` is a CNN (:class:`~cfedit.worlds.reference.ReferenceNet`, its own network and seed)
classifying the joint configuration of the factors; its 128-d layer gives the realism features.
:meth:`Reader.fit` trains it (cached like the worlds' reference networks); :meth:`Reader.save` writes it
to a folder, which ``cfedit evaluate --reader DIR`` (:meth:`Reader.load`) reads back: a reader trained
elsewhere (on data the editor never saw) can judge another run. The folder holds ``reader.safetensors``
(the weights; their metadata names the format, the factors in the order of the joint class, and the
image shape) and ``reader.json`` (the same, in
words, and the weights' digest). Loading never unpickles; a foreign, altered or corrupt folder raises
:class:`~cfedit.errors.CheckpointError` naming what is wrong.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from cfedit.core.domains import Domains
from cfedit.core.files import atomic_write, clip
from cfedit.data import LabelledImages
from cfedit.editors.checkpoint import (
    MAX_SIDE,
    check_layout,
    digest,
    file_digest,
    load_tensors,
    metadata,
    read_header,
    safetensors_bytes,
    tensor_layout,
)
from cfedit.errors import CfeditError, CheckpointError
from cfedit.worlds.reference import ClassifierConfig, ReferenceNet

MAX_READER_CLASSES = 4096  # the reader classifies the joint configuration of the factors
FORMAT, VERSION = "cfedit-reader", 1
WEIGHTS, DESCRIPTION = "reader.safetensors", "reader.json"


class Reader:
    """Reads every factor of images (N, C, H, W) in [0, 1]: ``reader(images)`` -> codes per factor."""

    def __init__(self, net: ReferenceNet, domains: Domains, trained_on: str = ""):
        self.net, self.domains, self.trained_on = net, domains, trained_on

    @classmethod
    def fit(cls, data: LabelledImages, epochs: int = 20, seed: int = 20_240_712, verbose: bool = False) -> Reader:
        doms = data.domains
        n_classes = int(np.prod(doms.shape))
        if n_classes > MAX_READER_CLASSES:
            raise CfeditError(f"the reader classifies the {n_classes:,} joint configurations of the factors, more than "
                              f"{MAX_READER_CLASSES:,}: use fewer factors or values")
        joint = np.ravel_multi_index(tuple(data.labels[k] for k in doms.names), doms.shape)
        net = ReferenceNet.fit_cached("reader-userdata", data.images, joint, n_classes,
                                      ClassifierConfig(epochs=epochs, seed=seed), verbose=verbose)
        return cls(net, doms, f"{len(data):,} labelled images ({epochs} epochs, seed {seed})")

    def __call__(self, images: np.ndarray) -> dict[str, np.ndarray]:
        codes = np.unravel_index(self.net.predict(images), self.domains.shape)
        return {k: c.astype(np.int64) for k, c in zip(self.domains.names, codes)}

    def features(self, images: np.ndarray) -> np.ndarray:
        return self.net.features(images)

    @property
    def fingerprint(self) -> str:
        return self.net.fingerprint

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.net.shape)

    def save(self, folder: str | Path) -> Path:
        """Write ``reader.safetensors`` and ``reader.json`` into ``folder`` (atomically each)."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        # factors as [name, values] pairs: their order fixes the joint class (metadata JSON is key-sorted)
        meta = {"format": FORMAT, "version": VERSION, "factors": [[k, list(v)] for k, v in self.domains.as_dict().items()],
                "image_shape": list(self.image_shape)}
        weights = safetensors_bytes(self.net.state(), meta)
        atomic_write(folder / WEIGHTS, weights)
        atomic_write(folder / DESCRIPTION, json.dumps({**meta, "trained on": self.trained_on, "network": self.fingerprint,
                                                       "weights_sha256": digest(weights)}, indent=2))
        return folder

    @classmethod
    def load(cls, folder: str | Path) -> Reader:
        """A reader written by :meth:`save`; anything else is refused with a one-line reason."""
        folder = Path(folder)
        if not folder.is_dir():
            raise CheckpointError(f"no reader at {clip(folder)}: not a folder")
        missing = [n for n in (WEIGHTS, DESCRIPTION) if not (folder / n).is_file()]
        if missing:
            raise CheckpointError(f"{clip(folder)} is not a reader folder (written by `cfedit evaluate` or Reader.save): "
                                  f"{', '.join(missing)} missing")
        try:
            desc = json.loads((folder / DESCRIPTION).read_text())
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise CheckpointError(f"{clip(folder / DESCRIPTION)} is corrupt: {clip(e, 100)}") from None
        except RecursionError:
            raise CheckpointError(f"{clip(folder / DESCRIPTION)} is corrupt: nested too deeply") from None
        if not isinstance(desc, dict) or desc.get("format") != FORMAT:
            raise CheckpointError(f"{clip(folder / DESCRIPTION)} does not describe a cfedit reader")
        if type(desc.get("version")) is not int or desc.get("version") != VERSION:
            raise CheckpointError(f"{clip(folder)} holds a reader of version {clip(desc.get('version'), 20)}; this cfedit "
                                  f"reads version {VERSION}")
        header = read_header(folder / WEIGHTS)  # its size, and each tensor's shape, before the file is read
        meta = metadata(header)
        try:
            domains = Domains({str(k): list(v) for k, v in meta["factors"]})
            shape = tuple(int(s) for s in meta["image_shape"])
            if len(shape) != 3 or not all(1 <= s <= MAX_SIDE for s in shape):
                raise ValueError(f"image shape {shape}")
            n_classes = int(np.prod(domains.shape))
            if n_classes > MAX_READER_CLASSES:
                raise ValueError(f"{n_classes:,} joint classes")
        except (CfeditError, KeyError, TypeError, ValueError) as e:
            raise CheckpointError(f"{clip(folder / WEIGHTS)} holds no readable reader: {clip(' '.join(str(e).split()), 200)}") from None
        if meta.get("format") == FORMAT:
            check_layout(header, folder / WEIGHTS, tensor_layout(ReferenceNet.on_meta(shape, n_classes)), "the reader it describes")
        if desc.get("weights_sha256") != file_digest(folder / WEIGHTS):
            raise CheckpointError(f"{clip(folder / WEIGHTS)} does not match the digest in {DESCRIPTION}: the file was changed "
                                  "or damaged")
        state, _ = load_tensors(folder / WEIGHTS, FORMAT)
        try:
            net = ReferenceNet.from_state(state, shape, n_classes)
        except RuntimeError as e:
            raise CheckpointError(f"{clip(folder / WEIGHTS)} holds no readable reader: {clip(' '.join(str(e).split()), 200)}") from None
        return cls(net, domains, str(desc.get("trained on", "")))
