"""The ANCM's edit path against a straightforward reference computation of the same steps, bit for bit.

The editor's per-request code skips work that does not change a number (no distribution objects built and
checked per call, the shared inputs' support enumerated once, per-model facts derived once). The reference
below computes every step the plain way, from the distributions the NCM and the labeller define
(``ncm.mechanism``, ``labeller(images)``) and the support enumerated afresh, drawing its random numbers in the
same order; the edited pixels and factors must be identical, not merely close."""

import itertools

import numpy as np
import pytest
import torch

from cfedit.core.domains import Continuous, Domains
from cfedit.core.graph import CausalGraph
from cfedit.core.intervention import Intervention
from cfedit.editors.ancm import ANCM, ANCMConfig
from cfedit.imaging.vae import VAEConfig
from cfedit.ncm import NCMConfig


def reference_posterior(ncm, v, n_samples, g):
    """P(U | V = v) sampled as the NCM's docstring says, from ``mechanism``'s distributions ("exact" method)."""
    k = ncm.config.latent_size
    grid = torch.tensor(list(itertools.product(range(k), repeat=len(ncm.cliques))))
    logp = torch.log_softmax(ncm.prior_logits, dim=1)
    lw = sum((logp[c, grid[:, c]] for c in range(len(ncm.cliques))), torch.zeros(len(grid)))  # no clique: one point, weight 1
    z = [grid[:, c] for c in range(len(ncm.cliques))]
    rows, inverse = torch.unique(torch.stack([v[n].double() for n in ncm.domains.names], 1), dim=0, return_inverse=True)
    distinct = {n: rows[:, i].to(v[n].dtype) for i, n in enumerate(ncm.domains.names)}
    r, m = len(rows), len(lw)
    zz = [t.repeat_interleave(r, dim=0) for t in z]
    vv = {n: t.repeat(m) for n, t in distinct.items()}
    ll = torch.zeros(m * r)
    for name in ncm.order:
        x = ncm._inside(name, vv[name]) if ncm.domains.is_continuous(name) else vv[name]
        ll = ll + ncm.mechanism(name, {p: vv[p] for p in ncm.graph.parents(name)}, zz, m * r).log_prob(x)
    joint = (ll.reshape(m, r).T + lw[None, :])[inverse]
    idx = torch.multinomial(torch.softmax(joint, dim=1), n_samples, replacement=True, generator=g).reshape(-1)
    zs = [t[idx] for t in z]
    rep = {n: t.repeat_interleave(n_samples) for n, t in v.items()}
    u = {}
    for name in ncm.order:
        pa = {p: rep[p] for p in ncm.graph.parents(name)}
        d = ncm.mechanism(name, pa, zs, len(rep[name]))
        if ncm.domains.is_continuous(name):
            y = ncm.transform(name).inv(ncm._inside(name, rep[name]))
            u[name] = ((y - d.base_dist.loc) / d.base_dist.scale)[:, None]
            continue
        probs = d.probs
        cdf = torch.cumsum(probs, dim=1)
        hi = cdf.gather(1, rep[name][:, None]).squeeze(1)
        lo = hi - probs.gather(1, rep[name][:, None]).squeeze(1)
        e = torch.rand(len(lo), generator=g)
        cols = torch.rand(len(lo), ncm.configs(name), generator=g)
        obs = torch.clamp(lo + e * (hi - lo), max=torch.nextafter(hi, lo))
        u[name] = cols.scatter(1, ncm._config_index(name, pa, len(lo))[:, None], obs[:, None])
    return zs, u


def reference_evaluate(ncm, zs, u, do):
    n, v = len(next(iter(u.values()))), {}
    for name in ncm.order:
        continuous = ncm.domains.is_continuous(name)
        if name in do:
            v[name] = torch.full((n,), do[name], dtype=torch.float32 if continuous else torch.long)
            continue
        pa = {p: v[p] for p in ncm.graph.parents(name)}
        d = ncm.mechanism(name, pa, zs, n)
        if continuous:
            v[name] = ncm.transform(name)(d.base_dist.loc + d.base_dist.scale * u[name][:, 0])
            continue
        pick = u[name].gather(1, ncm._config_index(name, pa, n)[:, None])
        v[name] = torch.clamp((torch.cumsum(d.probs, dim=1) <= pick).sum(dim=1), max=d.probs.shape[1] - 1)
    return v


def reference_label(labeller, images):
    out = {}
    for k, d in labeller(images).items():
        c = labeller.domains.continuous(k) if labeller.domains.is_continuous(k) else None
        out[k] = d.mean.clamp(c.lo, c.hi) if c is not None else d.probs.argmax(dim=1)
    return out


@torch.no_grad()
def reference_edit(model, images, do, n_samples, seed):
    x = torch.as_tensor(images)
    g = torch.Generator().manual_seed(seed)
    v = reference_label(model.labeller, x)
    zs, u = reference_posterior(model.ncm, v, n_samples, g)
    u_i = model.image.abduct(x, v).repeat_interleave(n_samples, dim=0)
    v_cf = reference_evaluate(model.ncm, zs, u, Intervention.of(model.domains, do))
    return model.image.generate_distinct(v_cf, u_i).numpy().reshape(len(x), n_samples, *model.image_shape), v_cf


def _editors():
    backdoor = CausalGraph.parse("D <-> C; D -> B; C -> B")
    dom = Domains({"D": [str(d) for d in range(10)], "C": ["green", "red"], "B": ["0", "1"]})
    cfg = ANCMConfig(ncm=NCMConfig(latent_size=8), image=VAEConfig(latent_dim=4, width=8))
    mixed = Domains({"D": [str(d) for d in range(10)], "T": Continuous(1.5, 6.5), "I": Continuous(64, 255)})
    return {"categorical": ANCM(backdoor, dom, (3, 28, 28), cfg, "cpu"),
            "continuous": ANCM(CausalGraph.parse("D -> T; D -> I; T -> I"), mixed, (1, 28, 28), cfg, "cpu")}


@pytest.mark.parametrize("which", ["categorical", "continuous"])
@pytest.mark.parametrize("n_images, k", [(1, 8), (1, 1), (5, 3)])
def test_edit_is_bit_identical_to_the_reference_computation(which, n_images, k):
    model = _editors()[which]
    for m in model.modules().values():
        m.eval()
    images = np.random.default_rng(3).random((n_images, *model.image_shape), dtype=np.float32)
    do = {"D": "7"}
    for seed in (0, 11):
        got = model.edit(images, do, k, seed=seed)
        want, v_cf = reference_edit(model, images, do, k, seed)
        assert np.array_equal(got.images, want)
        for f in model.domains.names:
            assert np.array_equal(got.factors[f].reshape(-1), v_cf[f].numpy())


def test_the_support_memo_follows_the_prior():
    """The enumerated support is remembered per state of the prior: a new prior gives new weights."""
    model = _editors()["categorical"]
    _, lw = model.ncm._support()
    with torch.no_grad():
        model.ncm.prior_logits[0, 0] += 1.0
    _, lw2 = model.ncm._support()
    assert lw2[0] > lw[0] and torch.equal(lw2, torch.log_softmax(model.ncm.prior_logits, dim=1)[0])


# ---------------------------------------------------------------------------------------------- batches of requests
def _items(model, n):
    from cfedit.editors.base import EditItem

    rng = np.random.default_rng(5)
    images = rng.random((n, *model.image_shape), dtype=np.float32)
    names = model.domains.names
    acts = [{names[0]: str(v)} for v in (1, 7)] + [{names[0]: "3", names[-1]: ("255" if model.domains.is_continuous(names[-1])
                                                                             else model.domains.values(names[-1])[0])}]
    return [EditItem(images[i], Intervention.of(model.domains, acts[i % len(acts)]), k=(1, 3, 8)[i % 3], seed=100 + i)
            for i in range(n)]


@pytest.mark.parametrize("which", ["categorical", "continuous"])
def test_a_batch_of_requests_gives_each_its_lone_edit(which):
    """Each item of edit_each draws from its own generator as its lone edit does: the same categorical factors
    (v' and v) whatever it is batched with; its pixels agree with the lone edit's up to float rounding (a row of a larger
    matrix product is rounded differently), which is all a batch can promise."""
    model = _editors()[which]
    for m in model.modules().values():
        m.eval()
    items = _items(model, 7)
    alone = [model.edit(it.image[None], it.do, it.k, seed=it.seed) for it in items]
    for batch in (items, items[::-1], items[2:5]):
        for it, r in zip(batch, model.edit_each(batch)):
            want = alone[items.index(it)]
            assert r.images.shape == want.images.shape == (1, it.k, *model.image_shape)
            for f in model.domains.names:
                if model.domains.is_continuous(f):  # a real value computed by a network: rounded as the pixels are
                    np.testing.assert_allclose(r.factors[f], want.factors[f], rtol=1e-5)
                    np.testing.assert_allclose(r.factual[f], want.factual[f], rtol=1e-5)
                else:
                    assert np.array_equal(r.factors[f], want.factors[f]) and np.array_equal(r.factual[f], want.factual[f])
            np.testing.assert_allclose(r.images, want.images, rtol=0, atol=1e-5)


def test_posterior_each_of_one_request_is_the_lone_posterior_bit_for_bit():
    model = _editors()["categorical"]
    v = {"D": torch.tensor([4]), "C": torch.tensor([1]), "B": torch.tensor([0])}
    a = model.ncm.posterior(v, 5, torch.Generator().manual_seed(9))
    b = model.ncm.posterior_each(v, [5], [torch.Generator().manual_seed(9)])
    assert all(torch.equal(x, y) for x, y in zip(a.z, b.z)) and all(torch.equal(a.u[k], b.u[k]) for k in a.u)


def test_evaluate_each_holds_each_group_to_its_own_action():
    model = _editors()["categorical"]
    v = {"D": torch.tensor([4, 2]), "C": torch.tensor([1, 0]), "B": torch.tensor([0, 1])}
    exo = model.ncm.posterior_each(v, [3, 2], [torch.Generator().manual_seed(1), torch.Generator().manual_seed(2)])
    dos = [Intervention({"C": 0}), Intervention({"D": 9, "B": 1})]
    got = model.ncm.evaluate_each(exo, dos, [3, 2])
    for rows, do in ((slice(0, 3), dos[0]), (slice(3, 5), dos[1])):
        part = type(exo)([t[rows] for t in exo.z], {k: t[rows] for k, t in exo.u.items()})
        want = model.ncm.evaluate(part, do)
        assert all(torch.equal(got[k][rows], want[k]) for k in want)
    assert (got["C"][:3] == 0).all() and (got["D"][3:] == 9).all() and (got["B"][3:] == 1).all()
