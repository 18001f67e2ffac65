"""scoring imports and runs where torch cannot be imported, loads Pillow only to plot, and never matplotlib."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]

SCRIPT = textwrap.dedent("""
    import importlib.abc, pkgutil, sys

    class NoTorch(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name == "torch" or name.startswith("torch."):
                raise ImportError("torch is blocked for this test")

    sys.meta_path.insert(0, NoTorch())
    import scoring
    for module in pkgutil.walk_packages(scoring.__path__, "scoring."):
        if module.name != "scoring.__main__":
            __import__(module.name)
    result = scoring.score_log_dirs({"sub": sys.argv[1]}, version="v0.6")
    assert "PIL" not in sys.modules, "Pillow imported before plotting"
    assert result.time_to_target.loc["sub", "ogbg"] == 200.0
    written = result.write(sys.argv[2])
    assert any(path.suffix == ".png" for path in written)
    assert "matplotlib" not in sys.modules, "the profile plot is drawn without matplotlib"
    assert not any(name == "torch" or name.startswith("torch.") for name in sys.modules)
    print("ok")
""")


def test_scoring_needs_no_torch(log_tree, tmp_path):
    for workload in ("ogbg", "wmt"):
        log_tree.times_trial("sub", 0, workload, 1, reach_at=1)
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    result = subprocess.run([sys.executable, "-c", SCRIPT, str(log_tree.root / "sub"),
                             str(tmp_path / "out")], cwd=REPO_ROOT, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"
