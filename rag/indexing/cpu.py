"""What this CPU can do, as far as the defaults care: which vector extensions it has, and
whether int8 dot products are fast on it (the embedder's default backend depends on that).

A cap on oneDNN (`ONEDNN_MAX_CPU_ISA`, which OpenVINO's CPU kernels obey) counts as the CPU's
limit, so a run capped to AVX2 chooses what an AVX2 laptop would."""

from __future__ import annotations

import functools
import os
from pathlib import Path

# oneDNN ISA names at or above which int8 dot products (VNNI) are allowed
_VNNI_CAPS = ("VNNI", "BF16", "AMX", "AVX10", "FP16", "ALL")


@functools.lru_cache(maxsize=1)
def cpu() -> tuple[str, frozenset[str]]:
    """The CPU's model name and flags, from /proc/cpuinfo (unknown and none elsewhere)."""
    path = Path("/proc/cpuinfo")
    if not path.exists():
        return "unknown", frozenset()
    lines = path.read_text(errors="replace").splitlines()
    models = [x.split(":", 1)[1].strip() for x in lines if x.startswith("model name")]
    flags = next((x.split(":", 1)[1].split() for x in lines if x.startswith("flags")), [])
    return (models[0] if models else "unknown"), frozenset(flags)


def vector_extensions(flags: frozenset[str] | set[str] | None = None) -> dict:
    """Which of the CPU's vector extensions matter here: AVX2 (every laptop of the last decade),
    AVX-512, its int8 dot products (VNNI) and bf16, AVX-VNNI (AVX2 with VNNI), AMX."""
    flags = cpu()[1] if flags is None else flags
    has = {
        "avx2": "avx2" in flags,
        "avx512": "avx512f" in flags,
        "avx512_vnni": "avx512_vnni" in flags,
        "avx512_bf16": "avx512_bf16" in flags,
        "avx_vnni": "avx_vnni" in flags,
        "amx": any(f.startswith("amx") for f in flags),
    }
    best = (
        "AMX"
        if has["amx"]
        else "AVX-512 VNNI"
        if has["avx512_vnni"]
        else "AVX-512"
        if has["avx512"]
        else "AVX2 with VNNI"
        if has["avx_vnni"]
        else "AVX2"
        if has["avx2"]
        else "older than AVX2"
    )
    return {**has, "best": best}


def int8_dot_products(
    flags: frozenset[str] | set[str] | None = None, cap: str | None = None
) -> bool:
    """Does this CPU multiply int8 vectors in one instruction (AVX-512 VNNI, AVX-VNNI, AMX),
    within the oneDNN cap if one is set? Without it int8 runs slower than float here."""
    has = vector_extensions(flags)
    cap = (os.environ.get("ONEDNN_MAX_CPU_ISA", "") if cap is None else cap).upper()
    if cap and not any(word in cap for word in _VNNI_CAPS):
        return False
    return has["avx512_vnni"] or has["avx_vnni"] or has["amx"]
