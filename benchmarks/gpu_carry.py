"""Wheels of what the GPU machine lacks for benchmarks/gpu_check.py, into .whl/ (git-ignored).

    .venv/bin/python -m benchmarks.gpu_carry [--python 3.12] [--out .whl]

The lent GPU machines have torch, transformers, peft, accelerate, numpy, PyYAML, rich,
matplotlib, aiohttp and httpx, but no network. turnwise needs pydantic (its config) and
tenacity (its tool executor); DeepSpeed needs hjson, and DeepSpeed itself is published only as
a source archive: it is built here into a pure-Python wheel (its CUDA ops are compiled on first
use, and the check's AdamW needs none). The machine's transformers (5.17 when last read)
predates the `cache=` keyword turnwise's hf engine passes (transformers 5.24), so this
environment's transformers goes too, with what it needs beyond the machine's packages.
Versions are the ones installed here, so the GPU runs what the tests ran: about 23 MiB;
docs/gpu.md gives the device command that carries and installs them.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from importlib.metadata import version
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# typing_extensions is on the machine, but pydantic wants a recent one; a newer one shadows it.
WHEELS = ("pydantic", "pydantic_core", "annotated-types", "typing-inspection",
          "typing_extensions", "tenacity", "hjson")
# transformers and what it needs beyond the machine's packages (found by running the dry run
# in a copy of the machine's environment: transformers 5.17, huggingface_hub 1.33).
TRANSFORMERS = ("transformers", "huggingface_hub", "httpx2", "httpcore2", "truststore",
                "kernels", "tomlkit")
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64")


def download(names: tuple[str, ...], out: Path, python: str) -> None:
    """Binary wheels of `names` at this environment's versions, for CPython `python` on x86-64."""
    platforms = [arg for p in PLATFORMS for arg in ("--platform", p)]
    pins = [f"{name}=={version(name)}" for name in names]
    subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps",
                    "--only-binary=:all:", "--python-version", python, "--implementation", "cp",
                    *platforms, "-d", str(out), *pins], check=True)


def deepspeed_wheel(out: Path) -> None:
    """DeepSpeed's source archive at this environment's version, built into a wheel in `out`."""
    pin = f"deepspeed=={version('deepspeed')}"
    with tempfile.TemporaryDirectory() as folder:
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps",
                        "--no-binary=:all:", "-d", folder, pin], check=True)
        archive = next(Path(folder).glob("deepspeed-*.tar.gz"))
        # No isolation: its setup.py imports torch, which this environment has.
        subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps",
                        "--no-build-isolation", "-w", str(out), str(archive)], check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--python", default="3.12", help="the GPU machine's Python version")
    parser.add_argument("--out", default=str(ROOT / ".whl"))
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    download(WHEELS + TRANSFORMERS, out, args.python)
    deepspeed_wheel(out)
    files = sorted(out.glob("*.whl"))
    size = sum(f.stat().st_size for f in files)
    print("\n".join(f.name for f in files))
    print(f"{len(files)} wheels, {size / 2**20:.1f} MiB in {out}")


if __name__ == "__main__":
    main()
