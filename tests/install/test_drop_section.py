"""scripts/image/drop_section.py, on a library built here the way libtorch_cuda is laid out: a large
read-only section between data the library uses. The cut library is smaller by the section's whole
pages, loads, and gives the same answers; the section reads as zeros."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[2]
SECTION_BYTES = 1 << 20

LIBRARY_C = f"""
#include <stddef.h>
/* As nvcc's kernels: read-only data in a section of its own, registered by a constructor. */
__attribute__((section(".nv_fatbin"), used, aligned(8)))
const unsigned char kernels[{SECTION_BYTES}] = {{7, 7, 7, [{SECTION_BYTES} - 1] = 9}};
const unsigned int table[4000] = {{[0] = 1, [100] = 2, [3999] = 3}};  /* not a whole page */
static const unsigned char *registered;
__attribute__((constructor)) static void register_kernels(void) {{ registered = kernels; }}
unsigned int table_sum(void) {{
    unsigned int sum = 0;
    for (size_t i = 0; i < 4000; i++) sum += table[i] * (unsigned int)(i + 1);
    return sum;
}}
int kernel_byte(size_t i) {{ return registered[i]; }}
"""

CALLS = f"""
import ctypes, sys
library = ctypes.CDLL(sys.argv[1])
library.kernel_byte.argtypes = [ctypes.c_size_t]
print(library.table_sum(), library.kernel_byte(0), library.kernel_byte({SECTION_BYTES // 2}))
"""


def drop_section_module() -> ModuleType:
    path = ROOT / "scripts" / "image" / "drop_section.py"
    spec = importlib.util.spec_from_file_location("drop_section", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # for its dataclasses
    spec.loader.exec_module(module)
    return module


def build(tmp_path: Path, source: str, name: str) -> Path:
    compiler = shutil.which("gcc") or shutil.which("cc")
    assert compiler is not None, "a C compiler builds the library under test (apt-get install gcc)"
    c = tmp_path / f"{name}.c"
    c.write_text(source)
    library = tmp_path / f"{name}.so"
    subprocess.run(
        [compiler, "-shared", "-fPIC", "-O1", "-Wl,--build-id", "-o", str(library), str(c)], check=True
    )
    return library


def answers(library: Path) -> str:
    """Loaded in a process of its own: the dynamic linker maps it afresh."""
    return subprocess.run(
        [sys.executable, "-c", CALLS, str(library)], check=True, capture_output=True, text=True
    ).stdout.split()


def test_the_section_leaves_the_file_and_the_library_still_works(tmp_path: Path) -> None:
    original = build(tmp_path, LIBRARY_C, "kernels")
    cut = tmp_path / "cut.so"
    shutil.copy(original, cut)
    freed = drop_section_module().drop_section(cut, ".nv_fatbin")
    assert freed >= SECTION_BYTES - 2 * 4096
    assert original.stat().st_size - cut.stat().st_size == freed
    table_sum, first, middle = answers(original)
    assert (first, middle) == ("7", "0")
    assert answers(cut) == [table_sum, "0", "0"], "same data; the kernels' pages read as zeros"
    readelf = subprocess.run(["readelf", "-lW", str(cut)], check=True, capture_output=True, text=True)
    assert "NOTE" not in readelf.stdout, "the build id's program header became the second half"


def test_a_library_without_the_section_is_left_as_it_is(tmp_path: Path) -> None:
    library = build(tmp_path, "int answer(void) { return 42; }\n", "plain")
    before = library.read_bytes()
    assert drop_section_module().drop_section(library, ".nv_fatbin") == 0
    assert library.read_bytes() == before
