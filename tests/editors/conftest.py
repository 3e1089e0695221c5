import os
import subprocess
import sys
import textwrap

import pytest


@pytest.fixture
def torchrun_fit(tmp_path):
    """Train a tiny Backdoor ANCM with two gloo processes under torchrun; returns the run folder.

    ``image`` is the image config as Python source (its import given by ``image_import``)."""

    def fit(image_import: str, image: str, steps: int, units: int, ncm_steps: int):
        out = tmp_path / "ddp"
        script = tmp_path / "train.py"
        script.write_text(textwrap.dedent(f"""
            import torch
            torch.set_num_threads(1)
            from cfedit.editors.ancm import ANCM, ANCMConfig
            from cfedit.data import LabelledImages
            {image_import}
            from cfedit.ncm import NCMConfig
            from cfedit.worlds import get_world
            w = get_world("backdoor")
            cfg = ANCMConfig(steps={steps}, batch_size=16, log_every={max(1, steps // 2)},
                             ncm=NCMConfig(steps={ncm_steps}, latent_size=8), image={image})
            ANCM.fit(w.graph, w.dataset({units}, seed=0), cfg, out_dir={str(out)!r})
        """))
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(script)]
        res = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
        assert res.returncode == 0, res.stderr[-2000:]
        return out

    return fit
