"""Drops the bytes of one read-only section from a shared library's file, leaving zero pages in memory.

Usage: drop_section.py LIBRARY SECTION

torch's libtorch_cuda carries its GPU kernels in the section .nv_fatbin (over 300 MB of a 400 MB file).
Only the CUDA driver reads them, when it loads a module on a GPU; on a CPU nothing does, but the
section sits in the middle of a loadable segment, between data the library does use. So the segment
is split in two: the part before the section (its bytes in the file, the section's pages zero-filled
by the dynamic linker, as it fills .bss) and the part after it (its bytes moved up in the file). Every
file offset after the cut moves by the same whole number of pages, so each segment keeps its offset
congruent to its address; addresses do not change, so no relocation, symbol or dynamic entry does.

The split needs one more program header: the PT_NOTE one (the build id, which loading never reads)
becomes it. A library without one, or whose section shares its pages with another segment, is left as
it is.
"""

from __future__ import annotations

import struct
import sys
from dataclasses import dataclass, replace
from pathlib import Path

ELF_HEADER = struct.Struct("<16sHHIQQQIHHHHHH")
PROGRAM_HEADER = struct.Struct("<IIQQQQQQ")
SECTION_HEADER = struct.Struct("<IIQQQQIIQQ")
PT_LOAD, PT_NOTE = 1, 4
SHT_NOBITS = 8


@dataclass(frozen=True)
class Segment:
    type: int
    flags: int
    offset: int
    vaddr: int
    paddr: int
    filesz: int
    memsz: int
    align: int

    def pack(self) -> bytes:
        return PROGRAM_HEADER.pack(
            self.type, self.flags, self.offset, self.vaddr, self.paddr, self.filesz, self.memsz, self.align
        )


@dataclass(frozen=True)
class Section:
    name: int
    type: int
    flags: int
    addr: int
    offset: int
    size: int
    rest: tuple[int, int, int, int]

    def pack(self) -> bytes:
        return SECTION_HEADER.pack(
            self.name, self.type, self.flags, self.addr, self.offset, self.size, *self.rest
        )


def section_named(data: bytes, sections: list[Section], strings_index: int, wanted: str) -> int | None:
    strings = sections[strings_index]
    for index, section in enumerate(sections):
        start = strings.offset + section.name
        if data[start : data.index(b"\0", start)].decode() == wanted:
            return index
    return None


def drop_section(library: Path, name: str) -> int:
    """Rewrites `library` without the file bytes of section `name`; returns the bytes freed (0 when the
    library cannot be cut, and is left unchanged)."""
    data = bytearray(library.read_bytes())
    header = list(ELF_HEADER.unpack_from(data))
    if header[0][:5] != b"\x7fELF\x02":  # 64-bit ELF only
        return 0
    phoff, shoff, phentsize, phnum, shentsize, shnum, shstrndx = (
        header[5], header[6], header[9], header[10], header[11], header[12], header[13]
    )  # fmt: skip
    segments = [Segment(*PROGRAM_HEADER.unpack_from(data, phoff + i * phentsize)) for i in range(phnum)]
    raw = [SECTION_HEADER.unpack_from(data, shoff + i * shentsize) for i in range(shnum)]
    sections = [Section(*r[:6], rest=r[6:]) for r in raw]
    index = section_named(data, sections, shstrndx, name)
    notes = [i for i, s in enumerate(segments) if s.type == PT_NOTE]
    if index is None or not notes or sections[index].type == SHT_NOBITS:
        return 0
    target = sections[index]
    holders = [
        i
        for i, s in enumerate(segments)
        if s.type == PT_LOAD and s.vaddr <= target.addr and target.addr + target.size <= s.vaddr + s.filesz
    ]
    if len(holders) != 1:
        return 0
    load = segments[holders[0]]
    page = load.align
    shift = load.offset - load.vaddr  # file offset minus address, the same in the whole segment
    first = -(-target.addr // page) * page  # the section's first whole page
    end = (target.addr + target.size) // page * page  # and the end of its last whole page
    cut = end - first
    if cut <= 0:
        return 0
    cut_from, cut_to = first + shift, end + shift  # the file bytes that go
    # Nothing else may have bytes in the cut: another section or segment would lose them.
    for i, s in enumerate(sections):
        if i != index and s.type != SHT_NOBITS and s.offset < cut_to and s.offset + s.size > cut_from:
            return 0
    for i, s in enumerate(segments):
        if i != holders[0] and s.filesz and s.offset < cut_to and s.offset + s.filesz > cut_from:
            return 0

    def moved(offset: int) -> int:
        return offset - cut if offset >= cut_to else offset

    before = replace(load, filesz=target.addr - load.vaddr, memsz=end - load.vaddr)
    after = replace(
        load,
        offset=cut_from,
        vaddr=end,
        paddr=end,
        filesz=load.vaddr + load.filesz - end,
        memsz=load.vaddr + load.memsz - end,
    )
    table: list[Segment] = []
    for i, s in enumerate(segments):
        if i == holders[0]:
            table += [before, after]  # in address order, as the loaders expect of PT_LOAD entries
        elif i != notes[0]:
            table.append(replace(s, offset=moved(s.offset)))
    sections = [replace(s, offset=moved(s.offset)) for s in sections]
    sections[index] = replace(sections[index], type=SHT_NOBITS)
    header[6] = moved(shoff)
    out = data[:cut_from] + data[cut_to:]
    out[: ELF_HEADER.size] = ELF_HEADER.pack(*header)
    for i, s in enumerate(table):
        out[phoff + i * phentsize : phoff + i * phentsize + PROGRAM_HEADER.size] = s.pack()
    for i, sec in enumerate(sections):
        start = header[6] + i * shentsize
        out[start : start + SECTION_HEADER.size] = sec.pack()
    library.write_bytes(out)
    return cut


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    freed = drop_section(Path(sys.argv[1]), sys.argv[2])
    print(f"drop_section: {sys.argv[1]} {sys.argv[2]}: {freed / 2**20:.0f} MB removed")
