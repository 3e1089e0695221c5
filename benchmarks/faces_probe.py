"""Short probes of the faces world's image stage: null-edit error and faithfulness while it trains.

    python benchmarks/faces_probe.py steps=600 every=200 latent_dim=16 width=32 depth=4 norm=group ctf=0.1

Trains only the image mechanism (a VAE with the given settings) and the labeller, with the ANCM's training
term (:class:`cfedit.editors.training.ImageStage`, counterfactual-consistency weight ``ctf``), on ``n``
training faces; every ``every`` steps it prints, on 300 held-out identities: the null-edit MAE, the KL of
q(u | i, v) in nats (and the dimensions above 0.1 nat), and for do(Age=old), do(Gender=male), do(GrayHair=1)
the oracle's reading of f^_I(v', abduct(i, v)) with v' the *true* counterfactual factors (Gender / Age /
GrayHair read as v': image-stage faithfulness, no NCM) and the MAE to the true counterfactual image.
Settings: ``steps every lr bs ctf n`` and any VAE setting (``latent_dim width depth blocks beta norm
residual``; ``residual=true`` makes the null edit exact by construction, so read its ``gt`` columns instead).
"""

from __future__ import annotations

import sys
import time

import numpy as np
import torch

from cfedit.editors.training import ImageStage, cosine_with_warmup
from cfedit.imaging import Labeller, build_mechanism, image_config
from cfedit.worlds import get_world


def main() -> None:
    args = dict(a.split("=", 1) for a in sys.argv[1:])
    steps, every = int(args.pop("steps", 600)), int(args.pop("every", 200))
    lr, bs, ctf, n = float(args.pop("lr", 2e-3)), int(args.pop("bs", 64)), float(args.pop("ctf", 0.1)), int(args.pop("n", 30000))
    settings = {k: (v if k == "norm" else v == "true" if v in ("true", "false") else float(v) if "." in v else int(v))
                for k, v in args.items()}
    torch.manual_seed(0)
    w = get_world("faces")
    tr = w.ascm("train", oracle=False)
    units = tr.units(n, seed=0)
    x = torch.from_numpy(tr.factual(units)).float()
    v = {k: torch.from_numpy(np.asarray(t)).long() for k, t in units.v.items()}
    ev = w.ascm("eval")
    held = ev.units(300, seed=1)
    xe = torch.from_numpy(ev.factual(held)).float()
    ve = {k: torch.from_numpy(np.asarray(t)).long() for k, t in held.v.items()}
    actions = [{"Age": 1}, {"Gender": 1}, {"GrayHair": 1}]
    truths = [ev.counterfactual(held, a) for a in actions]
    vae = build_mechanism(image_config("vae", **settings), w.domains, w.image_shape)
    stage = ImageStage(vae, Labeller(w.domains, w.image_shape), ctf)
    opt = torch.optim.Adam(stage.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, cosine_with_warmup(steps))
    print(settings, f"steps={steps} lr={lr} bs={bs} ctf={ctf} n={n} parameters={sum(p.numel() for p in vae.parameters()):,}", flush=True)
    t0 = time.time()
    for step in range(steps):
        idx = torch.randint(0, len(x), (bs,), generator=torch.Generator().manual_seed(step))
        loss = stage(x[idx], {k: t[idx] for k, t in v.items()})
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if (step + 1) % every and step + 1 != steps:
            continue
        vae.eval()
        with torch.no_grad():
            u = vae.abduct(xe, ve)
            null = (vae.generate(ve, u) - xe).abs().mean().item()
            mu, logvar = vae.encode(xe, ve)
            kl = (-0.5 * (1 + logvar - mu.pow(2) - logvar.exp())).mean(0)
            cells = []
            for action, (v_cf, x_cf) in zip(actions, truths):
                edits = vae.generate({k: torch.from_numpy(np.asarray(t)).long() for k, t in v_cf.items()}, u).numpy()
                read = w.reader(None)(edits)
                acc = "/".join(f"{np.mean(np.asarray(read[k]) == np.asarray(v_cf[k])):.3f}" for k in ("Gender", "Age", "GrayHair"))
                cells.append(f"{next(iter(action))}: {acc} gt {np.abs(edits - x_cf).mean():.3f}")
        vae.train()
        print(f"step {step + 1} {time.time() - t0:.0f}s loss {loss.item():.4f} null {null:.4f} kl {kl.sum().item():.1f} "
              f"active {(kl > 0.1).sum().item()} | " + " | ".join(cells), flush=True)


if __name__ == "__main__":
    main()
