"""Rebuild the shipped editors and reference networks, and rewrite the package's manifest.

For each world with a config in ``configs/pretrained/`` (or the worlds named):

1. train it: ``cfedit train --world NAME -o runs/pretrained/NAME --config configs/pretrained/NAME.toml`` (resumable:
   an interrupted build continues where it stopped);
2. package it into ``src/cfedit/artefacts/NAME/`` with float16 weights (``cfedit.runs.pretrained.package_editor``),
   recording the config the TOML gives (a run trained before an edit-time setting was added to it is packaged with
   that setting; any other difference from the run's config is refused);
3. evaluate the packaged editor (``cfedit evaluate pretrained:NAME --world NAME -n 2000 --samples 8``; a world with
   continuous factors: ``-n 500`` measured edits), which trains (or finds in the cache) the reference networks it
   reads: the world's oracle readers and realism feature network;
4. copy those networks from the cache into ``src/cfedit/artefacts/reference/`` and record them, and the editor's
   figures, in the manifest.

    python scripts/pretrained.py                    # every world with a config
    python scripts/pretrained.py backdoor --threads 2
    python scripts/pretrained.py backdoor --skip-train --wall-seconds 3100   # package a run trained earlier
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def hardware() -> str:
    return f"{os.cpu_count()} CPU cores ({platform.machine()}), torch threads as in the command"


def reference_files(cache: Path, world: str) -> list[Path]:
    """The cached reference networks the world's evaluation uses (the newest of each kind)."""
    out = []
    for pattern in ("digits-oracle-*.safetensors", f"realism-{world}-*.safetensors", f"{world}-oracle-*.safetensors"):
        found = sorted(cache.glob(pattern), key=lambda p: p.stat().st_mtime)
        out += found[-1:]
    return out


def figures(path: Path) -> dict:
    """The headline figures of an evaluation's results.json (the editor is method "ancm")."""
    from cfedit.evaluation.results import read_headline

    return read_headline(path, "ancm")


def evaluate_args(name: str, n: int) -> list[str]:
    """The evaluation's arguments after ``--world NAME``: k = 8 samples a unit on a categorical world; a world with
    continuous factors measures each edit one by one (its units capped at CONTINUOUS_UNITS)."""
    from cfedit.worlds import get_world

    if get_world(name).domains.continuous_names:
        return ["-n", str(min(n, CONTINUOUS_UNITS))]
    return ["-n", str(n), "--samples", "8"]


CONTINUOUS_UNITS = 500


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("worlds", nargs="*", help="worlds to rebuild [default: every configs/pretrained/*.toml]")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--skip-train", action="store_true", help="package runs/pretrained/NAME as it is")
    ap.add_argument("--wall-seconds", type=float, default=None, help="with --skip-train: the training's wall time")
    ap.add_argument("-n", type=int, default=2000, help="held-out units of the evaluation")
    ap.add_argument("--machine-note", default="", help="said of the machine in the manifest (e.g. that it was shared)")
    args = ap.parse_args()
    from cfedit.artefacts import Artefact, artefacts_folder, read_manifest, sha256, write_manifest
    from cfedit.runs.pretrained import package_editor
    from cfedit.worlds.reference import cache_dir

    names = args.worlds or sorted(p.stem for p in (ROOT / "configs" / "pretrained").glob("*.toml"))
    for name in names:
        cfg = ROOT / "configs" / "pretrained" / f"{name}.toml"
        run = ROOT / "runs" / "pretrained" / name
        train = ["cfedit", "train", "--world", name, "-o", f"runs/pretrained/{name}", "--config", f"configs/pretrained/{name}.toml",
                 "--threads", str(args.threads)]
        seconds = args.wall_seconds or 0.0
        if not args.skip_train:
            t0 = time.time()
            subprocess.run([sys.executable, "-m", *train], cwd=ROOT, check=True)
            seconds = time.time() - t0
        import tomllib

        from cfedit.editors.ancm import ANCMConfig
        from cfedit.worlds import get_world

        seed = int(tomllib.loads(cfg.read_text()).get("seed", 0))
        config = ANCMConfig.from_toml(cfg, get_world(name).editor_settings)  # recorded as is (edit-time settings may differ from the run's)
        package_editor(run, name, command=" ".join(train), seed=seed, wall_seconds=seconds, config=config,
                       hardware=f"{hardware()}; --threads {args.threads}" + (f"; {args.machine_note}" if args.machine_note else ""))
        base = artefacts_folder()
        out = ROOT / "reports" / "pretrained" / name
        ev = ["cfedit", "evaluate", f"pretrained:{name}", "--world", name, *evaluate_args(name, args.n),
              "-o", str(out.relative_to(ROOT)),
              "--threads", str(args.threads)]
        t0 = time.time()
        subprocess.run([sys.executable, "-m", *ev], cwd=ROOT, check=True)  # trains (or finds) the reference networks too
        seconds_eval = time.time() - t0
        manifest = read_manifest(base)
        for src in reference_files(cache_dir(), name):  # ship the networks the evaluation read
            if src.stem in manifest:  # shared with another world (the digit oracle): shipped already
                continue
            (base / "reference").mkdir(exist_ok=True)
            shutil.copyfile(src, base / "reference" / src.name)
            manifest[src.stem] = Artefact(name=src.stem, kind="reference", files={f"reference/{src.name}": sha256(src)},
                                          command=f"trained at first use by `cfedit evaluate pretrained:{name} --world {name}` "
                                                  "(ReferenceNet.fit_cached, seed 0; wall time not recorded)",
                                          seed=0, wall_seconds=0.0, world=name,
                                          hardware=f"{os.cpu_count()} CPU cores ({platform.machine()})")
        figs = figures(out / "results.json")
        figs.update(evaluate_command=" ".join(ev[:-2]), evaluate_seconds=round(seconds_eval, 1))
        a = manifest[name]
        manifest[name] = Artefact(**{**a.__dict__, "figures": figs})
        write_manifest(manifest, base)
        print(f"{name}: packaged, fingerprint {manifest[name].fingerprint}", file=sys.stderr)


if __name__ == "__main__":
    main()
