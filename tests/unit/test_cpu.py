"""CPU detection: the instruction set every reported figure and the handler's start-up line carry."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from sagebert import cpu

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "model_code"))
import inference

# /proc/cpuinfo excerpts of the three kinds of machine the project meets (flags shortened to what matters).
AVX2 = (
    "model name\t: Intel(R) Xeon(R) CPU E5-2686 v4 @ 2.30GHz\ncpu MHz\t\t: 2300.000\nflags\t\t: fpu sse avx fma avx2\n"
)
VNNI = (
    "model name\t: Intel(R) Xeon(R) Platinum 8375C CPU @ 2.90GHz\ncpu MHz\t\t: 2900.000\n"
    "flags\t\t: avx2 fma avx512f avx512bw avx512_vnni\n"
)
AMX = (
    "model name\t: Intel(R) Xeon(R) Platinum 8488C\ncpu MHz\t\t: 2400.000\n"
    "flags\t\t: avx2 fma avx512f avx512_vnni avx512_bf16 amx_bf16 amx_tile amx_int8\n"
)


@pytest.mark.parametrize(
    ("cpuinfo", "isa", "flags"),
    [
        (AVX2, "avx2", ["avx2", "fma"]),
        (VNNI, "avx512_vnni", ["avx2", "fma", "avx512f", "avx512_vnni"]),
        (AMX, "amx", ["avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16", "amx_int8", "amx_tile"]),
        ("", "avx2", []),
    ],
    ids=["broadwell-avx2", "ice-lake-vnni", "sapphire-rapids-amx", "no-cpuinfo"],
)
def test_instruction_set_from_cpuinfo(cpuinfo: str, isa: str, flags: list[str]) -> None:
    found = cpu.describe(cpuinfo)
    assert found["isa"] == isa and found["flags"] == flags
    assert found["model"] == ("unknown" if not cpuinfo else cpuinfo.split("\n")[0].split(": ")[1])


def test_handler_reports_the_same_flags_as_the_benchmark() -> None:
    # The handler cannot import sagebert (it runs alone in the container): its own reader must agree.
    machine = cpu.describe()
    line = inference.cpu_summary()
    assert f"cpu={machine['model']!r}" in line
    reported = set(line.split("flags=")[1].split(","))
    assert reported - {"none"} == set(machine["flags"]) - {"fma", "amx_tile"}
