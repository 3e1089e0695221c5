import sys

import numpy as np
import pytest
from PIL import Image


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.fixture
def cli(capsys, monkeypatch):
    """Run the ``cfedit`` command line in-process: returns (exit code, stdout, stderr)."""
    from cfedit.cli import main

    def run(*args: str):
        monkeypatch.setattr(sys, "argv", ["cfedit", *args])
        code = 0
        try:
            main()
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        out = capsys.readouterr()
        return code, out.out, out.err

    return run



@pytest.fixture(scope="session")
def tiny_ancm_config():
    """An ANCM barely trained (the factor level is the point): two image steps, a small NCM, a 4-channel VAE."""
    from cfedit.editors.ancm import ANCMConfig
    from cfedit.imaging.vae import VAEConfig
    from cfedit.ncm import NCMConfig

    return ANCMConfig(steps=2, batch_size=16, ncm=NCMConfig(steps=60, latent_size=8), image=VAEConfig(width=4, latent_dim=2))


@pytest.fixture(scope="session")
def tiny_backdoor_run(tmp_path_factory, tiny_ancm_config):
    """A tiny ANCM fitted on 400 Backdoor units (seed 0) and saved: its folder. Tests that alter it copy it first."""
    from cfedit.editors.ancm import ANCM
    from cfedit.worlds import get_world

    w = get_world("backdoor")
    out = tmp_path_factory.mktemp("tiny-backdoor") / "run"
    ANCM.fit(w.graph, w.dataset(400, seed=0), tiny_ancm_config, out_dir=out, log=None)
    return out

# ---- a CelebA / CelebA-HQ folder in the exact file formats (tests/data/test_celeba.py, tests/cli/test_celeba.py)
CELEBA_ATTRIBUTES = ("5_o_Clock_Shadow Arched_Eyebrows Attractive Bags_Under_Eyes Bald Bangs Big_Lips Big_Nose Black_Hair Blond_Hair "
         "Blurry Brown_Hair Bushy_Eyebrows Chubby Double_Chin Eyeglasses Goatee Gray_Hair Heavy_Makeup High_Cheekbones "
         "Male Mouth_Slightly_Open Mustache Narrow_Eyes No_Beard Oval_Face Pale_Skin Pointy_Nose Receding_Hairline "
         "Rosy_Cheeks Sideburns Smiling Straight_Hair Wavy_Hair Wearing_Earrings Wearing_Hat Wearing_Lipstick "
         "Wearing_Necklace Wearing_Necktie Young").split()
CELEBA_N = 30  # images in a test CelebA folder (tests/data/test_celeba.py assumes 30)


def celeba_table(seed=0):
    rng = np.random.default_rng(seed)
    return np.where(rng.random((CELEBA_N, len(CELEBA_ATTRIBUTES))) < 0.4, 1, -1)


def write_celeba(root, table, hq=False, partition=True):
    """CelebA: 178x218 JPEGs whose left half is red for a male face (to check the crop keeps the content)."""
    img_dir = root / ("CelebA-HQ-img" if hq else "img_align_celeba")
    img_dir.mkdir(parents=True)
    names = [f"{i}.jpg" if hq else f"{i + 1:06d}.jpg" for i in range(CELEBA_N)]
    male = table[:, CELEBA_ATTRIBUTES.index("Male")] > 0
    w, h = (256, 256) if hq else (178, 218)
    for name, m in zip(names, male):
        a = np.full((h, w, 3), 40, np.uint8)
        a[:, : w // 2, 0 if m else 2] = 230
        Image.fromarray(a).save(img_dir / name, quality=95)
    lines = [str(CELEBA_N), " ".join(CELEBA_ATTRIBUTES)] + [f"{n}  " + " ".join(f"{v:2d}" for v in row) for n, row in zip(names, table)]
    (root / ("CelebAMask-HQ-attribute-anno.txt" if hq else "list_attr_celeba.txt")).write_text("\n".join(lines) + "\n")
    if partition and not hq:
        (root / "list_eval_partition.txt").write_text("".join(f"{n} {0 if i < 20 else 1 if i < 25 else 2}\n" for i, n in enumerate(names)))
    return names


@pytest.fixture
def celeba_kit():
    """The CelebA attribute names, a random table of them, and the folder writer."""
    from types import SimpleNamespace

    return SimpleNamespace(attributes=CELEBA_ATTRIBUTES, table=celeba_table, write=write_celeba)


# ---- images stored turned, with the EXIF orientation that turns them upright (tests/core/test_files.py, tests/server)
STORED = {  # orientation -> how a camera stores the upright pixels (H, W, C) so that a viewer turns them back
    1: lambda a: a, 2: lambda a: a[:, ::-1], 3: lambda a: a[::-1, ::-1], 4: lambda a: a[::-1],
    5: lambda a: a.transpose(1, 0, 2), 6: lambda a: np.rot90(a, 1), 7: lambda a: np.rot90(a, -1)[::-1], 8: lambda a: np.rot90(a, -1),
}


def oriented_bytes(upright: np.ndarray, orientation: int, fmt: str = "PNG") -> bytes:
    """The file (PNG or JPEG) of ``upright`` (H, W, 3) uint8 stored turned, with EXIF tag 0x0112 = ``orientation``."""
    import io

    img = Image.fromarray(np.ascontiguousarray(STORED[orientation](upright)))
    exif = Image.Exif()
    exif[0x0112] = orientation
    buf = io.BytesIO()
    img.save(buf, format=fmt, exif=exif.tobytes(), **({"quality": 95} if fmt == "JPEG" else {}))
    return buf.getvalue()


@pytest.fixture
def oriented():
    """The writer of a turned file with its EXIF orientation: oriented(upright, orientation, fmt) -> bytes."""
    return oriented_bytes


@pytest.fixture
def upright():
    """A 12 x 20 (H x W) image with no symmetry: every turn or flip of it differs from it."""
    y, x = np.mgrid[0:12, 0:20]
    return np.stack([x * 12, y * 20, (x + 2 * y) * 5], axis=-1).astype(np.uint8)
