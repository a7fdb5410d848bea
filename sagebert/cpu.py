"""What CPU this is, in the terms that decide int8 and bf16 speed and numerics.

ONNX Runtime picks its int8 kernels by CPUID at run time (AVX2, AVX-512 VNNI, AMX), and PyTorch's
bf16 path (oneDNN) needs AVX-512 BF16 or AMX, so every figure the project reports carries the CPU's
model and these flags. Linux only (/proc/cpuinfo); elsewhere the model is "unknown" and no flags.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

# The flags that matter here, in the order they are reported.
FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_bf16", "amx_int8", "amx_tile")

# Peak multiply-add throughput per core and cycle (fp32 FLOPs; int8 operations), by instruction set:
# - AVX2: 2 FMA units x 8 fp32 lanes x 2 = 32 FLOP; int8 through VPMADDUBSW/VPMADDWD ~2x fp32 = 64.
# - AVX-512: 2 FMA units x 16 lanes x 2 = 64 FLOP (Ice Lake and Sapphire Rapids server cores, Zen 5).
# - AVX-512 VNNI: VPDPBUSD does 64 u8 x s8 multiply-adds, 2 units: 256 int8 operations.
# - AMX: one TMUL tile op per cycle, 1024 int8 multiply-adds (2048 operations), 512 bf16 (1024 FLOP).
PEAK_PER_CYCLE = {
    "avx2": {"fp32": 32, "int8": 64, "bf16": 32},
    "avx512": {"fp32": 64, "int8": 128, "bf16": 64},
    "avx512_vnni": {"fp32": 64, "int8": 256, "bf16": 64},
    "avx512_vnni+bf16": {"fp32": 64, "int8": 256, "bf16": 128},
    "amx": {"fp32": 64, "int8": 2048, "bf16": 1024},
}


def _cpuinfo() -> str:
    path = Path("/proc/cpuinfo")
    return path.read_text(encoding="utf-8", errors="replace") if path.is_file() else ""


def describe(cpuinfo: str | None = None) -> dict[str, Any]:
    """{"model", "flags" (the ones in FLAGS that this CPU has), "isa" (the best of PEAK_PER_CYCLE), "mhz"}."""
    text = _cpuinfo() if cpuinfo is None else cpuinfo
    model, flags, mhz = "unknown", set[str](), 0.0
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "model name" and model == "unknown":
            model = value.strip()
        elif key == "flags" and not flags:
            flags = set(value.split())
        elif key == "cpu MHz":
            with contextlib.suppress(ValueError):
                mhz = max(mhz, float(value))
    return {"model": model, "flags": [f for f in FLAGS if f in flags], "isa": isa(flags), "mhz": mhz}


def isa(flags: set[str] | list[str]) -> str:
    """The instruction set that bounds matrix products on a CPU with these flags."""
    present = set(flags)
    if {"amx_int8", "amx_tile"} <= present:
        return "amx"
    if "avx512_vnni" in present:
        return "avx512_vnni+bf16" if "avx512_bf16" in present else "avx512_vnni"
    if "avx512f" in present:
        return "avx512"
    return "avx2"


def summary(machine: dict[str, Any] | None = None) -> str:
    """One line: model, instruction set, flags (what every reported figure carries)."""
    found = machine or describe()
    return f"{found['model']} [{found['isa']}; {' '.join(found['flags']) or 'no AVX2'}]"
