"""Images inside a .tar or .zip archive, read in place (catalogue dumps often come as one archive).

An image inside an archive is named `ARCHIVE!/MEMBER`, e.g. `/data/fashion/images.tar!/images/123.jpg`.
The archive is indexed once per process; members are then read by offset, safely from many threads.
Compressed tars (.tar.gz, .tgz) cannot be read in place: extract them, or repack as .tar or .zip.
"""

from __future__ import annotations

import os
import tarfile
import threading
import zipfile
import zlib
from pathlib import Path

from tagkit.text import nfc

SEPARATOR = "!/"
ARCHIVE_SUFFIXES = (".tar", ".zip")

_lock = threading.Lock()
_indexes: dict[str, _Archive] = {}


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
        try:
            with tarfile.open(path, mode="r:") as tar:
                self.members = {nfc(m.name): (m.offset_data, m.size) for m in tar if m.isfile()}
        except tarfile.ReadError as error:
            raise ArchiveError(f"{path}: not an uncompressed tar archive ({error}); "
                               "extract it or use .tar/.zip") from None
        self.fd = os.open(path, os.O_RDONLY)

    def size(self, member: str) -> int:
        if nfc(member) not in self.members:
            raise FileNotFoundError(f"no {member} in {self.path}")
        return self.members[nfc(member)][1]

    def read(self, member: str) -> bytes:
        if nfc(member) not in self.members:
            raise FileNotFoundError(f"no {member} in {self.path}")
        offset, size = self.members[nfc(member)]
        return os.pread(self.fd, size, offset)


class _Zip(_Archive):
    def __init__(self, path: str) -> None:
        super().__init__(path)
        try:
            self.zip = zipfile.ZipFile(path)
        except zipfile.BadZipFile as error:
            raise ArchiveError(f"{path}: not a readable zip archive ({error})") from None
        self.members = {nfc(_zip_name(info)): info for info in self.zip.infolist()}
        self.lock = threading.Lock()

    def size(self, member: str) -> int:
        return self._info(member).file_size

    def read(self, member: str) -> bytes:
        info = self._info(member)
        try:
            with self.lock:
                return self.zip.read(info)
        except (zipfile.BadZipFile, EOFError, zlib.error) as error:  # damaged: a bad download, a flipped byte
            raise ArchiveError(f"damaged in {self.path} ({error})") from None
        except (RuntimeError, NotImplementedError) as error:  # encrypted, or a compression zipfile cannot read
            raise ArchiveError(f"cannot be read from {self.path} ({error})") from None

    def _info(self, member: str) -> zipfile.ZipInfo:
        info = self.members.get(nfc(member))
        if info is None:
            raise FileNotFoundError(f"no {member} in {self.path}")
        return info


def _zip_name(info: zipfile.ZipInfo) -> str:
    """A member's name. macOS and Info-ZIP's `zip` write UTF-8 names without the flag that says so, which Python
    then reads as cp437 (`╪╣┌⌐╪│` for `عکس`): such a name is read as UTF-8 when it is that."""
    if info.flag_bits & 0x800:
        return info.filename
    try:
        return info.filename.encode("cp437").decode("utf-8")
    except UnicodeError:
        return info.filename


def _archive(path: str) -> _Archive:
    with _lock:
        if path not in _indexes:
            if not os.path.isfile(path):
                raise FileNotFoundError(f"archive not found: {path}")
            _indexes[path] = _Zip(path) if path.lower().endswith(".zip") else _Tar(path)
        return _indexes[path]
