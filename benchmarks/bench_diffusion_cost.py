"""Two measurements behind the diffusion backend's design, on untrained networks (no run needed).

1. Inversion exactness against the fixed-point iterations of each inversion step, for velocity and noise
   prediction: the null-edit MAE generate(v, abduct(x, v)) vs x on sharp random binary images (an untrained
   network: exactness is a property of the inversion, not of training).
2. Cost of the counterfactual-consistency term: one training step (loss + labeller, batch 64) against one
   differentiable edit (8 inversion + 8 sampling steps with gradients, batch 64), with the peak memory.

    python benchmarks/bench_diffusion_cost.py [exactness] [cost]
"""

from __future__ import annotations

import resource
import sys
import time

import torch

from cfedit.editors.ancm import ANCMConfig
from cfedit.imaging import Labeller, build_mechanism
from cfedit.imaging.diffusion import DiffusionConfig, DiffusionMechanism
from cfedit.worlds import get_world
from cfedit.worlds.colored_mnist import DOMAINS


def _v(n):
    return {"D": torch.arange(n) % 10, "C": torch.arange(n) % 2, "B": (torch.arange(n) // 2) % 2}


def exactness() -> None:
    x = (torch.rand(8, 3, 28, 28, generator=torch.Generator().manual_seed(1)) > 0.7).float()
    print("prediction    steps | null-edit MAE at 0 / 1 / 2 / 4 / 8 fixed-point iterations (untrained (8, 16) UNet)")
    for pred in ("v_prediction", "epsilon"):
        for steps in (4, 8):
            row = []
            for k in (0, 1, 2, 4, 8):
                torch.manual_seed(0)
                cfg = DiffusionConfig(channels=(8, 16), steps=steps, inversion_iters=k, prediction=pred)
                m = DiffusionMechanism(DOMAINS, (3, 28, 28), cfg).eval()
                row.append(f"{(m.generate(_v(8), m.abduct(x, _v(8))) - x).abs().mean().item():.4f}")
            print(f"{pred:<13} {steps:>5} | " + " / ".join(row))


def cost() -> None:
    cfg = ANCMConfig.from_toml("configs/diffusion-cpu.toml")
    torch.manual_seed(0)
    d = get_world("backdoor").dataset(512, seed=0)
    m = build_mechanism(cfg.image, d.domains, d.image_shape)
    lab = Labeller(d.domains, d.image_shape, cfg.labeller)
    x, v = torch.as_tensor(d.images[:64]), {k: torch.as_tensor(a[:64]) for k, a in d.labels.items()}
    opt = torch.optim.Adam(list(m.parameters()) + list(lab.parameters()), 1e-3)
    ts = []
    for _ in range(12):
        t0 = time.time()
        loss = m.loss(x, v) + lab.loss(x, v)
        opt.zero_grad()
        loss.backward()
        opt.step()
        m.after_step()
        ts.append(time.time() - t0)
    print(f"training step (batch 64, median of the last 8): {sorted(ts[4:])[4]:.2f} s")
    fwd, inv = m._schedulers()
    y, r = m.cond(v), 1000 // cfg.image.steps
    t0 = time.time()
    z = m._to_model(x)
    for t_hi in inv.timesteps.tolist():
        z = inv.step(m._noise(z, max(t_hi - r, 0), y, None, inv), t_hi, z).prev_sample
    for t in fwd.timesteps.tolist():
        z = fwd.step(m._eps(z, t, y, None), t, z).prev_sample
    z.mean().backward()
    print(f"differentiable edit ({cfg.image.steps} + {cfg.image.steps} steps, batch 64, forward + backward): {time.time() - t0:.1f} s; "
          f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6:.1f} GB")


if __name__ == "__main__":
    what = sys.argv[1:] or ["exactness", "cost"]
    for w in what:
        {"exactness": exactness, "cost": cost}[w]()
