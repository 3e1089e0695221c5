"""One tiny trained run (Backdoor world, VAE mechanism) and its web application, shared by the server tests."""

from pathlib import Path

import pytest

from cfedit.editors.ancm import ANCM, ANCMConfig
from cfedit.imaging import LabellerConfig
from cfedit.imaging.vae import VAEConfig
from cfedit.ncm import NCMConfig
from cfedit.worlds import get_world

TEST_HOSTS = ("testserver",)  # the Host that the framework's test client (and the schema fuzzer) sends
TINY = ANCMConfig(steps=40, batch_size=32, log_every=100, checkpoint_every=1000,
                  ncm=NCMConfig(steps=150, latent_size=16), image=VAEConfig(width=8, latent_dim=4))


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory) -> tuple[ANCM, Path]:
    """A run trained for seconds: its edits are crude, which the API and page tests do not mind."""
    w = get_world("backdoor")
    out = tmp_path_factory.mktemp("tiny_run")
    return ANCM.fit(w.graph, w.dataset(2000, seed=0), TINY, out_dir=out, log=None), out


@pytest.fixture(scope="session")
def web_app(tiny_run):
    from cfedit.runs import Run
    from cfedit.server.app import ServeConfig, create_app

    return create_app(Run.of(tiny_run[0], "backdoor"), config=ServeConfig(n_examples=4, allowed_hosts=TEST_HOSTS))


@pytest.fixture(scope="session")
def client(web_app):
    from fastapi.testclient import TestClient

    return TestClient(web_app)


TINY_MORPHO = ANCMConfig(steps=10, batch_size=16, log_every=100, checkpoint_every=1000, ctf_weight=0.0,
                         ncm=NCMConfig(steps=40, latent_size=8), image=VAEConfig(width=4, latent_dim=2), labeller=LabellerConfig(width=4))


@pytest.fixture(scope="session")
def tiny_morpho_run(tmp_path_factory) -> tuple[ANCM, Path]:
    """A run with continuous factors (world morpho: D, T -> I) trained for seconds on 64 units."""
    pytest.importorskip("skimage")
    w = get_world("morpho")
    out = tmp_path_factory.mktemp("tiny_morpho_run")
    return ANCM.fit(w.graph, w.dataset(64, seed=0), TINY_MORPHO, out_dir=out, log=None), out


@pytest.fixture(scope="session")
def morpho_app(tiny_morpho_run):
    """Its web application; the run is matched to world morpho by its graph and factors."""
    from cfedit.runs import Run
    from cfedit.server.app import ServeConfig, create_app

    return create_app(Run.of(tiny_morpho_run[0]), config=ServeConfig(n_examples=3, allowed_hosts=TEST_HOSTS))


@pytest.fixture(scope="session")
def morpho_client(morpho_app):
    from fastapi.testclient import TestClient

    return TestClient(morpho_app)
