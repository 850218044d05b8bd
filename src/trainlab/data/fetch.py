"""Where datasets live on disk, and an atomic, MD5-verified download into the user cache.

Lookup order for a real dataset NAME (issue 2): `$TRAINLAB_DATA/NAME/`, the user cache
(`$XDG_CACHE_HOME/trainlab/NAME`, default `~/.cache/trainlab/NAME`), then system directories
such as Debian's `/usr/share/datasets/fashion-mnist`. An explicit `root` replaces that list
with `root/NAME` and `root`. Downloads go to a temporary file in the destination directory,
are checked against the published MD5, and only then renamed into place (`os.replace` is
atomic on POSIX), so a failed or corrupt download leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
import urllib.request
from collections.abc import Mapping
from pathlib import Path

from .errors import one_line

# Directories installed by distribution packages (Debian: dataset-fashion-mnist).
SYSTEM_DIRS: dict[str, tuple[Path, ...]] = {
    "fashion_mnist": (Path("/usr/share/datasets/fashion-mnist"),),
}
DEFAULT_TIMEOUT = 60.0  # seconds without data before a download is abandoned
_CHUNK = 1 << 20


class DownloadError(OSError):
    """A download failed (network error, HTTP error or checksum mismatch); one-line message."""


def cache_root() -> Path:
    """The trainlab cache directory: `$XDG_CACHE_HOME/trainlab`, else `~/.cache/trainlab`."""
    base = os.environ.get("XDG_CACHE_HOME", "")
    if not base or not os.path.isabs(base):  # the XDG spec says to ignore relative paths
        base = str(Path.home() / ".cache")
    return Path(base) / "trainlab"


def search_dirs(name: str, root: str | Path | None = None) -> list[Path]:
    """Directories to look in for dataset `name`, in order."""
    if root is not None:
        return [Path(root) / name, Path(root)]
    dirs = []
    env = os.environ.get("TRAINLAB_DATA", "")
    if env:
        dirs.append(Path(env) / name)
    dirs.append(cache_root() / name)
    dirs.extend(SYSTEM_DIRS.get(name, ()))
    return dirs


def download_dir(name: str, root: str | Path | None = None) -> Path:
    """Where a download of dataset `name` is written: `root/NAME` or the cache."""
    return Path(root) / name if root is not None else cache_root() / name


def file_md5(path: str | Path) -> str:
    """Hex MD5 of a file, read in chunks."""
    digest = hashlib.md5()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def join_url(base: str, filename: str) -> str:
    """`base` + `/` + `filename`, with exactly one slash between them."""
    return base.rstrip("/") + "/" + filename


def download_file(url: str, dest: Path, md5: str, *, timeout: float = DEFAULT_TIMEOUT) -> Path:
    """Download `url` to `dest` atomically, verifying its MD5; nothing is left on failure."""
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    except OSError as err:
        raise DownloadError(one_line(f"cannot write to {dest.parent}: {err}")) from err
    tmp = Path(tmp_name)
    try:
        digest = hashlib.md5()
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as resp:
            while chunk := resp.read(_CHUNK):
                out.write(chunk)
                digest.update(chunk)
        if digest.hexdigest() != md5.lower():
            raise DownloadError(
                f"MD5 mismatch for {url}: expected {md5}, got {digest.hexdigest()} "
                "(corrupt or changed file; deleted)"
            )
        os.replace(tmp, dest)
    except DownloadError:
        raise
    except OSError as err:  # URLError, HTTPError, timeouts and disk errors are all OSErrors
        raise DownloadError(one_line(f"download of {url} failed: {err}")) from err
    finally:
        tmp.unlink(missing_ok=True)
    return dest


def download_files(
    base_url: str, md5s: Mapping[str, str], dest_dir: Path, *, timeout: float = DEFAULT_TIMEOUT
) -> None:
    """Download every file of `md5s` missing from `dest_dir`; all or none are added.

    If one file fails, the files this call already wrote are removed again, so the cache holds
    either a complete set or what it held before.
    """
    created = _missing_dirs(dest_dir)
    written: list[Path] = []
    try:
        for filename, md5 in md5s.items():
            dest = dest_dir / filename
            if not dest.exists():
                url = join_url(base_url, filename)
                written.append(download_file(url, dest, md5, timeout=timeout))
    except BaseException:
        for path in written:
            path.unlink(missing_ok=True)
        for directory in created:  # deepest first; only directories this call made
            with contextlib.suppress(OSError):
                directory.rmdir()
        raise


def _missing_dirs(directory: Path) -> list[Path]:
    """`directory` and those of its parents that do not exist yet, deepest first."""
    missing = []
    while not directory.exists() and directory != directory.parent:
        missing.append(directory)
        directory = directory.parent
    return missing
