"""The package as a user installs it: the light install imports no torch; the layering contracts hold."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

def _readme_example() -> tuple[str, str]:
    """The README's first Python block and the output its last line's comment promises."""
    text = (ROOT / "README.md").read_text()
    block = text.split("```python\n", 1)[1].split("```", 1)[0]
    return block, block.strip().splitlines()[-1].split("#", 1)[1].strip()


LIGHT = _readme_example()[0] + """
import sys
sys.argv = ["cfedit", "world", "show", "frontdoor"]
from cfedit.cli import main
try:
    main()
except SystemExit as e:
    assert not e.code, e.code
heavy = sorted(m for m in ("torch", "safetensors", "mlxtend", "matplotlib") if m in sys.modules)
print("heavy:", heavy)
"""


def test_light_install_needs_no_torch():
    """Bounds, the worlds' exact tables and `cfedit world show` run without importing torch or the other
    packages of the `edit` extra; also the README's Python example prints what the README says."""
    out = subprocess.run([sys.executable, "-c", LIGHT], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.splitlines()[0] == _readme_example()[1]  # the README's example prints what it says
    assert out.stdout.strip().splitlines()[-1] == "heavy: []"


def test_a_command_that_needs_the_edit_extra_says_so():
    """With torch made unimportable, `cfedit train` ends in one `error:` line naming the extra."""
    code = ("import sys; sys.modules['torch'] = None; sys.argv = ['cfedit', 'train', '--world', 'backdoor', '-o', 'x']\n"
            "from cfedit.cli import main\nmain()")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and "cfedit[edit]" in out.stderr and "Traceback" not in out.stderr, out.stderr[-2000:]


def test_layers_point_down():
    """import-linter's contracts in pyproject.toml: upper layers import lower ones only; core, scm and the
    exact bounds never import torch."""
    exe = Path(sys.executable).with_name("lint-imports")
    out = subprocess.run([str(exe)], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert out.returncode == 0, out.stdout[-3000:]
