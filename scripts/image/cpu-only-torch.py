"""Trims PyPI's CUDA build of PyTorch down to what the image needs to run on a CPU.

Usage: cpu-only-torch.py SITE_PACKAGES

PyPI's Linux wheel of torch is a CUDA build: its libraries link against NVIDIA's (cuBLAS, cuFFT,
cuSPARSE, NCCL, NVRTC, NVSHMEM ...), which come as nvidia-* packages, over 3 GB in all. The image runs
the embedding model on a CPU and hides every GPU (CUDA_VISIBLE_DEVICES is empty), so none of their code
runs; the dynamic linker still has to find them when torch is imported. A CPU-only build of torch
(no nvidia/ folder) needs none of this: nothing is done.

1. The GPU-only libraries are replaced by stubs: a library with the same name and the same dependencies,
   defining the symbols that the real libraries loaded with it take from it (with their symbol
   versions), each function aborting with a message naming it. The linker is satisfied; a call, which
   can only come from a CUDA code path, fails loudly instead of misbehaving. Symbols that another loaded
   library defines too (C++ inline functions and template instances, defined weakly in many libraries)
   are left out of the stub, so that they keep resolving to real code.
2. The CUDA runtime, CUPTI, cuDNN's loader (with its graph library) and cuFile stay real: torch calls
   them on a CPU too (to count devices, for its profiler, for version checks), and they answer
   "no device" gracefully. They are small. torch's own libtorch_cuda stays real too: torch's Python
   module calls into it when imported, on a CPU too (c10d's GIL checker). Its GPU kernels (the section
   .nv_fatbin, over 300 MB), which only the CUDA driver reads when it loads them on a GPU, are dropped
   from its file and become zero pages in memory (drop_section.py).
3. Everything under nvidia/ that nothing loads any more is deleted: headers, static libraries, cuDNN's
   kernels (which libcudnn opens only for an operation on a GPU), cuSOLVER (opened only by
   libtorch_cuda_linalg, which torch opens only for linear algebra on a GPU), NVRTC's built-ins,
   NVSHMEM's transports and bitcode. So are torch's C++ headers and CMake files (for compiling
   extensions, which the image never does), its protobuf compiler and its CUDA linear-algebra library.
4. The symbol tables used only by debuggers (.symtab, not the dynamic symbols) are stripped from torch's
   own libraries that stay real: C++ stack traces lose function names, nothing else changes.

Needs readelf, strip and a C compiler: the build stage has them, the final image has none.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from drop_section import drop_section

# Libraries that do work only on a GPU, by the name before ".so": stubbed where torch links against them.
GPU_ONLY_LIBRARIES = frozenset(
    {
        "libcublas",
        "libcublasLt",
        "libcufft",
        "libcurand",
        "libcusparse",
        "libcusparseLt",
        "libnccl",
        "libnvrtc",
        "libnvJitLink",
        "libnvshmem_host",
    }
)
# Libraries that the real ones open at run time on a CPU too: cuDNN's loader opens its graph library to
# answer torch's version check.
OPENED_ON_A_CPU = frozenset({"libcudnn_graph"})
# Parts of torch for building C++ extensions or for linear algebra on a GPU (opened on demand only).
TORCH_PARTS_NOT_NEEDED = (
    "include",
    "share",
    "bin/protoc",
    "bin/protoc-3.13.0.0",
    "lib/libtorch_cuda_linalg.so",
)
# Where the CUDA compiler puts the GPU kernels of a library.
GPU_KERNELS_SECTION = ".nv_fatbin"
# Where the system's libraries (libstdc++, libc ...) are, for the symbols they define.
SYSTEM_LIBRARY_DIRS = (Path("/lib/x86_64-linux-gnu"), Path("/usr/lib/x86_64-linux-gnu"), Path("/lib64"))

STUB_HANDLER_C = r"""
#include <stdio.h>
#include <stdlib.h>

__attribute__((visibility("hidden"), noreturn)) void gpu_library_missing(const char *symbol) {
    fprintf(stderr, "%s: this image runs on a CPU only, it has no GPU library (%s called)\n",
            LIBRARY, symbol);
    abort();
}
"""


@dataclass(frozen=True)
class Symbol:
    name: str
    kind: str  # FUNC, OBJECT or TLS
    binding: str  # GLOBAL, WEAK or UNIQUE
    size: int
    version: str | None


@dataclass(frozen=True)
class DynamicSymbols:
    defined: list[Symbol]
    undefined: set[str]


def run(*command: str) -> str:
    return subprocess.run(command, check=True, capture_output=True, text=True).stdout


def needed(library: Path) -> list[str]:
    return re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", run("readelf", "--dynamic", str(library)))


def soname(library: Path) -> str:
    found = re.search(r"\(SONAME\)\s+Library soname: \[([^\]]+)\]", run("readelf", "--dynamic", str(library)))
    return found.group(1) if found else library.name


def dynamic_symbols(library: Path) -> DynamicSymbols:
    """The symbols the library defines (without the version-definition ones) and those it takes."""
    defined, undefined = [], set()
    for line in run("readelf", "--dyn-syms", "--wide", str(library)).splitlines():
        fields = line.split()
        if len(fields) < 8 or not fields[0].rstrip(":").isdigit():
            continue
        _, _, size, kind, binding, _, section, raw_name = fields[:8]
        name, _, version = raw_name.partition("@")
        if section == "UND":
            undefined.add(name)
        elif section != "ABS" and kind in ("FUNC", "OBJECT", "TLS", "IFUNC"):
            defined.append(Symbol(name, kind, binding, int(size, 0), version.lstrip("@") or None))
    return DynamicSymbols(defined, undefined)


def stub_assembly(symbols: list[Symbol]) -> str:
    lines = ["\t.text"]
    for index, symbol in enumerate(symbols):
        label = f'"{symbol.name}"'
        if symbol.kind not in ("FUNC", "OBJECT", "TLS"):
            raise SystemExit(f"cannot stub {symbol.name} ({symbol.kind})")
        lines.append(f"\t.{'weak' if symbol.binding == 'WEAK' else 'globl'} {label}")
        if symbol.kind == "FUNC":
            lines += [
                f"\t.type {label}, @function",
                f"{label}:",
                f"\tleaq .Lname{index}(%rip), %rdi",
                "\tjmp gpu_library_missing",
                "\t.section .rodata",
                f'.Lname{index}:\t.asciz "{symbol.name}"',
                "\t.text",
            ]
            continue
        if symbol.kind == "TLS":
            section, kind = '\t.section .tbss,"awT",@nobits', "@tls_object"
        else:
            section = "\t.bss"
            kind = "@gnu_unique_object" if symbol.binding == "UNIQUE" else "@object"
        lines += [
            section,
            "\t.balign 16",
            f"\t.type {label}, {kind}",
            f"\t.size {label}, {symbol.size}",
            f"{label}:\t.zero {max(symbol.size, 1)}",
            "\t.text",
        ]
    lines.append('\t.section .note.GNU-stack,"",@progbits')
    return "\n".join(lines) + "\n"


def version_script(library: Path, symbols: list[Symbol]) -> str | None:
    versions = {symbol.version for symbol in symbols}
    if versions <= {None}:
        return None
    if len(versions) != 1:
        raise SystemExit(f"{library.name}: cannot stub several symbol versions: {sorted(map(str, versions))}")
    names = "".join(f'\t\t"{symbol.name}";\n' for symbol in symbols)
    return f"{versions.pop()} {{\n\tglobal:\n{names}\tlocal: *;\n}};\n"


def write_stub(library: Path, symbols: list[Symbol], search: dict[str, Path]) -> None:
    """Replaces the library with a stub defining these symbols, each function aborting when called.

    The stub needs the same libraries of torch and nvidia/ as the original: other libraries find symbols
    through them (libtorch_python finds libtorch_nvshmem's through libtorch_cuda), so the graph of what
    loads what stays the same.
    """
    with tempfile.TemporaryDirectory() as work_dir:
        work = Path(work_dir)
        (work / "stub.s").write_text(stub_assembly(symbols))
        (work / "handler.c").write_text(STUB_HANDLER_C)
        command = ["cc", "-shared", "-fPIC", "-s", "-O2", f'-DLIBRARY="{library.name}"']
        command += ["-o", str(work / "stub.so"), str(work / "stub.s"), str(work / "handler.c")]
        command += [f"-Wl,-soname,{soname(library)}", "-Wl,-z,noexecstack", "-Wl,--no-as-needed"]
        command += [str(search[name]) for name in needed(library) if name in search]
        script = version_script(library, symbols)
        if script is not None:
            (work / "versions.map").write_text(script)
            command.append(f"-Wl,--version-script={work / 'versions.map'}")
        subprocess.run(command, check=True)
        shutil.copyfile(work / "stub.so", library)


def library_stem(name: str) -> str:
    return name.split(".so", 1)[0]


def is_gpu_only(library: Path) -> bool:
    return library_stem(library.name) in GPU_ONLY_LIBRARIES


def loaded_closure(roots: list[Path], search: dict[str, Path]) -> set[Path]:
    """The libraries of torch and nvidia/ that loading the roots pulls in."""
    found: set[Path] = set()
    pending = list(roots)
    while pending:
        library = pending.pop()
        if library not in found:
            found.add(library)
            pending += [search[name] for name in needed(library) if name in search]
    return found


def system_libraries(libraries: set[Path], search: dict[str, Path]) -> set[Path]:
    names = {name for library in libraries for name in needed(library) if name not in search}
    return {
        directory / name
        for name in names
        for directory in SYSTEM_LIBRARY_DIRS
        if (directory / name).is_file()
    }


def remove(path: Path) -> int:
    """Deletes a file or folder; returns the bytes freed."""
    if path.is_symlink() or path.is_file():
        size = path.lstat().st_size
        path.unlink()
        return size
    if path.is_dir():
        size = sum(item.lstat().st_size for item in path.rglob("*") if not item.is_dir())
        shutil.rmtree(path)
        return size
    return 0


def size_of(paths: set[Path]) -> int:
    return sum(path.stat().st_size for path in paths)


def main(site_packages: Path) -> None:
    torch, nvidia = site_packages / "torch", site_packages / "nvidia"
    if not nvidia.is_dir():
        print("cpu-only-torch: no NVIDIA libraries here, nothing to trim")
        return
    libraries = sorted((torch / "lib").glob("*.so*")) + sorted(nvidia.glob("*/lib/*.so*"))
    search = {library.name: library for library in libraries if not library.is_symlink()}
    roots = [*sorted(torch.glob("_C*.so")), torch / "lib" / "libtorch_global_deps.so"]
    closure = loaded_closure(roots, search)
    keep = closure | {library for library in search.values() if library_stem(library.name) in OPENED_ON_A_CPU}
    stubbed = {library for library in closure if is_gpu_only(library)}
    real = keep - stubbed
    symbols = {library: dynamic_symbols(library) for library in real | system_libraries(real, search)}
    taken = set().union(*(symbols[library].undefined for library in real))
    defined_elsewhere = {symbol.name for found in symbols.values() for symbol in found.defined}
    before = size_of(closure)

    for library in sorted(stubbed):
        exported = [
            symbol
            for symbol in dynamic_symbols(library).defined
            if symbol.name in taken and symbol.name not in defined_elsewhere
        ]
        print(f"cpu-only-torch: stub {library.relative_to(site_packages)}: {len(exported)} symbols")
        write_stub(library, exported, search)
    for library in sorted(real & set((torch / "lib").iterdir())):
        subprocess.run(["strip", "--strip-debug", "--strip-unneeded", str(library)], check=True)
    for library in sorted((torch / "lib").glob("libtorch_cuda*.so")):
        drop_section(library, GPU_KERNELS_SECTION)
    freed = before - size_of(closure)
    for path in sorted(nvidia.rglob("*"), reverse=True):
        if path.is_dir():
            if not any(path.iterdir()):
                path.rmdir()
        elif path not in keep and path.suffix not in (".py", ".pyc"):
            freed += remove(path)
    for part in TORCH_PARTS_NOT_NEEDED:
        freed += remove(torch / part)
    print(f"cpu-only-torch: {freed / 2**20:.0f} MB removed")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    main(Path(sys.argv[1]))
