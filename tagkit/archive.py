"""Images inside a .tar or .zip archive, read in place (catalogue dumps often come as one archive).

An image inside an archive is named `ARCHIVE!/MEMBER`, e.g. `/data/fashion/images.tar!/images/123.jpg`.
The archive is indexed once per process (again when the file changes, at most once a minute); members are then read
by offset, safely from many threads. A tar cut short is read up to the cut. Compressed tars (.tar.gz, .tgz) cannot
be read in place: extract them, or repack as .tar or .zip.
"""

from __future__ import annotations

import contextlib
import os
import tarfile
import threading
import time
import zipfile
import zlib
from pathlib import Path

from tagkit.text import nfc

SEPARATOR = "!/"
ARCHIVE_SUFFIXES = (".tar", ".zip")

_lock = threading.Lock()
# path -> (the file's size and time, when it was indexed again (None: not yet), its index)
_indexes: dict[str, tuple[tuple[int, int] | None, float | None, _Archive | ArchiveUnavailable]] = {}
REINDEX_SECONDS = 60.0  # a changed archive is indexed again at most this often


class ArchiveError(OSError):
    """An archive or member that cannot be read; the message says which and why."""


def member_path(archive: str | Path, member: str) -> str:
    """The name tagkit uses for `member` inside `archive`."""
    return f"{archive}{SEPARATOR}{member.lstrip('/')}"


def split(path: str) -> tuple[str, str] | None:
    """(archive, member) when `path` names a member of a .tar or .zip archive, else None."""
    archive, sep, member = str(path).partition(SEPARATOR)
    if sep and archive.lower().endswith(ARCHIVE_SUFFIXES):
        return archive, member
    return None


def read_member(path: str, limit: int | None = None) -> bytes:
    """The bytes of `ARCHIVE!/MEMBER`; raises FileNotFoundError for a missing member, ArchiveError, and
    MemberTooLarge for one whose size is over `limit` bytes (a zip member can unpack to far more than it takes)."""
    parts = split(path)
    if parts is None:
        raise ValueError(f"not an archive member path: {path}")
    archive, member = parts
    found = _archive(archive)
    size = found.size(member)
    if limit is not None and size > limit:
        raise MemberTooLarge(size)
    return found.read(member)


class ArchiveUnavailable(ArchiveError):
    """The archive cannot be read where a member would be (not there, not a zip or tar, damaged from its start,
    cut short before it): what was stored of the member before is kept, as for a file not found."""


class MemberTooLarge(ArchiveError):
    """A member larger than the reader's limit; `size` in bytes, as the archive states it."""

    def __init__(self, size: int) -> None:
        super().__init__(f"{size:,} bytes")
        self.size = size


class _Archive:
    def __init__(self, path: str) -> None:
        self.path = path

    def read(self, member: str) -> bytes:
        raise NotImplementedError

    def size(self, member: str) -> int:
        raise NotImplementedError


class _Tar(_Archive):
    """An uncompressed tar: member offsets found once, then read with pread (thread-safe)."""

    def __init__(self, path: str) -> None:
        super().__init__(path)
        self.members: dict[str, tuple[int, int]] = {}
        self.cut_short = ""  # why the members stop early (a download not finished), or ""
        try:
            with tarfile.open(path, mode="r:") as tar:
                try:
                    for m in tar:
                        if m.isfile():
                            self.members[_key(m.name)] = (m.offset_data, m.size)
                except tarfile.ReadError as error:  # the members before the cut are read
                    self.cut_short = str(error)
            if not self.cut_short and not _ends_as_a_tar_does(path):  # cut between two members, or in a header
                self.cut_short = "no end-of-archive blocks"
        except tarfile.ReadError as error:
            with open(path, "rb") as f:
                gzipped = f.read(2) == b"\x1f\x8b"
            raise ArchiveUnavailable(f"{path}: " + ("a gzip-compressed tar, which cannot be read in place: extract "
                                     "it, or repack it as .tar or .zip" if gzipped else f"not a tar archive ({error}); "
                                     "extract it or use .tar/.zip")) from None
        self.fd = os.open(path, os.O_RDONLY)

    def size(self, member: str) -> int:
        return self._member(member)[1]

    def read(self, member: str) -> bytes:
        offset, size = self._member(member)
        data = os.pread(self.fd, size, offset)
        if len(data) < size:
            raise ArchiveUnavailable(f"{self.path} is cut short in the middle of this file (a download not "
                                     "finished?)")
        return data

    def _member(self, member: str) -> tuple[int, int]:
        found = self.members.get(_key(member))
        if found is None and self.cut_short:
            raise ArchiveUnavailable(f"{self.path} is cut short after {len(self.members):,} files (a download not "
                                     "finished?), and this one is not among them")
        if found is None:
            raise FileNotFoundError(f"no {member} in {self.path}")
        return found


class _Zip(_Archive):
    def __init__(self, path: str) -> None:
        super().__init__(path)
        try:
            self.zip = zipfile.ZipFile(path)
        except zipfile.BadZipFile as error:
            raise ArchiveUnavailable(f"{path}: not a readable zip archive ({error})") from None
        self.members: dict[str, zipfile.ZipInfo] = {}
        for info in self.zip.infolist():
            self.members[_key(_zip_name(info))] = info
        for info in self.zip.infolist():  # a name also as cp720 wrote it: a name of its own comes first
            if not info.flag_bits & 0x800 and not info.filename.isascii():
                self.members.setdefault(_key(_dos_arabic(info.filename)), info)
        self.lock = threading.Lock()

    def size(self, member: str) -> int:
        return self._info(member).file_size

    def read(self, member: str) -> bytes:
        info = self._info(member)
        if info.flag_bits & 0x1:
            raise ArchiveError(f"encrypted in {self.path}: unzip it with its password, or zip the photos again "
                               "without one")
        try:
            with self.lock:
                return self.zip.read(info)
        except (zipfile.BadZipFile, EOFError, zlib.error) as error:  # damaged: a bad download, a flipped byte
            raise ArchiveError(f"damaged in {self.path} ({error})") from None
        except (RuntimeError, NotImplementedError):  # Deflate64 (Windows' zip of large folders), LZMA without lzma...
            raise ArchiveError(f"packed in {self.path} in a way tagkit cannot unpack (compression method "
                               f"{info.compress_type}): unzip it, or zip the photos again") from None

    def _info(self, member: str) -> zipfile.ZipInfo:
        info = self.members.get(_key(member))
        if info is None:
            raise FileNotFoundError(f"no {member} in {self.path}")
        return info


def _key(name: str) -> str:
    """A member's name as looked up: composed (`nfc`), without a leading `/` or `./` (`tar cf x.tar ./photos` names
    them so; a path is asked for without them, as `member_path` writes it)."""
    name = name.lstrip("/")
    while name.startswith("./"):
        name = name[2:].lstrip("/")
    return nfc(name)


def _ends_as_a_tar_does(path: str) -> bool:
    """Whether a tar file ends with the two zero blocks that close every tar (one cut short does not)."""
    with open(path, "rb") as f:
        size = f.seek(0, os.SEEK_END)
        f.seek(max(0, size - 1024))
        return size >= 1024 and not f.read().strip(b"\0")


def _zip_name(info: zipfile.ZipInfo) -> str:
    """A member's name, with `/` between folders (PowerShell's Compress-Archive writes `\\`). macOS and Info-ZIP's
    `zip` write UTF-8 names without the flag that says so, which Python then reads as cp437 (`╪╣┌⌐╪│` for `عکس`):
    such a name is read as UTF-8 when it is that."""
    name = info.filename
    if not info.flag_bits & 0x800:
        with contextlib.suppress(UnicodeError):
            name = name.encode("cp437").decode("utf-8")
    return name.replace("\\", "/")


def _dos_arabic(cp437_name: str) -> str:
    """A name without the UTF-8 flag (read by Python as cp437) as the DOS code page of an Arabic or Persian Windows
    (cp720) wrote it, `/` between folders."""
    return cp437_name.encode("cp437").decode("cp720", "replace").replace("\\", "/")


def _archive(path: str) -> _Archive:
    """The archive at `path`, indexed once; again when the file has changed since (its size or time), then at most
    once every REINDEX_SECONDS (a file still being written changes all the time). One that cannot be read is tried
    once too (its ArchiveUnavailable raised again for each member asked for)."""
    try:
        stat = os.stat(path)
        version: tuple[int, int] | None = (stat.st_mtime_ns, stat.st_size)
    except OSError:
        version = None
    with _lock:
        known = _indexes.get(path)
        if known is None or (known[0] != version and (known[1] is None
                                                     or time.monotonic() - known[1] > REINDEX_SECONDS)):
            try:
                if version is None or not os.path.isfile(path):
                    raise ArchiveUnavailable(f"archive not found: {path}")
                found: _Archive | ArchiveUnavailable = _Zip(path) if path.lower().endswith(".zip") else _Tar(path)
            except OSError as error:
                found = error if isinstance(error, ArchiveUnavailable) else ArchiveUnavailable(
                    f"{path}: cannot be read ({error.strerror or error})")
            _indexes[path] = known = (version, None if known is None else time.monotonic(), found)
    if isinstance(known[2], ArchiveUnavailable):
        raise ArchiveUnavailable(str(known[2]))
    return known[2]
