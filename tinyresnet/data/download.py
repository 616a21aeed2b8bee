"""Download CIFAR-10 (the python version) once, checked and unpacked safely.

>>> from tinyresnet.data.download import download_cifar10
>>> download_cifar10("data")          # data/cifar-10-python.tar.gz -> data/cifar-10-batches-py/

What it guarantees:

- **verified**: the archive's MD5 must be the published one (``CIFAR10_MD5``); a file that differs
  is moved aside as ``….bad`` and never unpacked;
- **atomic**: bytes arrive in ``cifar-10-python.tar.gz.part``; only the complete, verified archive
  takes the final name, and the batch folder appears in one rename after a full unpack;
- **resumable**: an interrupted download keeps its ``.part`` file and the next run asks the server
  for the rest (an HTTP ``Range`` request), starting afresh if the server ignores it;
- **safe to unpack**: members with absolute paths or ``..``, links leading outside the folder,
  devices and pipes are refused (and tarfile's ``data`` filter is used where Python has it);
- **once**: data already in place is not downloaded again; an archive already there (downloaded
  by hand, say) is checked and unpacked without a download.

The archive URL is ``CIFAR10_ARCHIVE_URL``, or the environment variable ``TINYRESNET_CIFAR10_URL``
(a mirror: the full URL of the archive, or a folder URL ending in ``/``). The MD5 is checked
whatever the URL, so a mirror must serve the very same file.
"""

import gzip
import hashlib
import http.client
import lzma
import os
import shutil
import sys
import tarfile
import tempfile
import urllib.error
import urllib.request
import zlib

CIFAR10_ARCHIVE_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR10_MD5 = "c58f30108f718f92721af3b95e74349a"       # published on https://www.cs.toronto.edu/~kriz/cifar.html
CIFAR10_ARCHIVE = "cifar-10-python.tar.gz"
CIFAR10_FOLDER = "cifar-10-batches-py"
CIFAR10_FILES = tuple(f"data_batch_{i}" for i in range(1, 6)) + ("test_batch",)
URL_ENVIRONMENT_VARIABLE = "TINYRESNET_CIFAR10_URL"
TIMEOUT_SECONDS = 60                                    # for the connection and for each read
CHUNK_BYTES = 1 << 20


class DownloadError(RuntimeError):
    """A download or unpack that could not be completed; the message says why and what to do."""


def cifar10_url():
    """The archive URL: ``TINYRESNET_CIFAR10_URL`` if set (a folder URL ending in ``/`` gets the file name),
    otherwise the official ``CIFAR10_ARCHIVE_URL``."""
    url = os.environ.get(URL_ENVIRONMENT_VARIABLE, "").strip() or CIFAR10_ARCHIVE_URL
    return url + CIFAR10_ARCHIVE if url.endswith("/") else url


def cifar10_folder_present(data_dir):
    """The folder holding all six CIFAR-10 batch files (``data_dir`` itself or its ``cifar-10-batches-py``),
    or None when neither has them all."""
    for folder in (data_dir, os.path.join(data_dir, CIFAR10_FOLDER)):
        if all(os.path.isfile(os.path.join(folder, name)) for name in CIFAR10_FILES):
            return folder
    return None


def download_cifar10(data_dir="data", progress=True):
    """Make sure ``data_dir`` holds CIFAR-10: download ``cifar-10-python.tar.gz`` there if needed, check its
    MD5 and unpack it into ``data_dir/cifar-10-batches-py``. Returns the folder of the batch files.

    Nothing is downloaded when the batch files are already there, and an archive already in ``data_dir``
    is checked and unpacked instead of downloaded. ``progress`` shows a progress bar and what is done.
    Raises ``DownloadError`` (a RuntimeError) with a one-line reason and fix.
    """
    data_dir = os.path.expanduser(data_dir or "data")
    found = cifar10_folder_present(data_dir)
    if found:
        return found
    _refuse_partial_batches(data_dir)
    try:
        os.makedirs(data_dir, exist_ok=True)
    except OSError as e:
        raise DownloadError(f"cannot create the data folder {data_dir!r} ({e.strerror or e}); "
                            f"choose a writable --data-dir") from e
    archive = os.path.join(data_dir, CIFAR10_ARCHIVE)
    url = cifar10_url()
    if os.path.isfile(archive):
        digest = file_md5(archive)
        if digest == CIFAR10_MD5:
            _say(progress, f"found {archive} (MD5 checked); unpacking it")
        else:
            bad = _set_aside(archive)
            print(f"note: {archive} has MD5 {digest}, not the published {CIFAR10_MD5}; moved it aside to {bad} "
                  f"and downloading afresh", file=sys.stderr)
    if not os.path.isfile(archive):
        _say(progress, f"downloading CIFAR-10 (163 MB) from {url} into {data_dir}")
        download_file(url, archive, CIFAR10_MD5, progress=progress, folder=data_dir)
    try:
        folder = _unpack_cifar10(archive, data_dir)
    except DownloadError:
        _set_aside(archive)     # verified yet not unpackable: never use it again
        raise
    _say(progress, f"CIFAR-10 is ready in {folder} (you may delete {archive})")
    return folder


def download_file(url, path, md5, progress=True, folder=None):
    """Download ``url`` to ``path`` through ``path + '.part'``, resuming a partial ``.part`` file, and give
    it its final name only once complete and of MD5 ``md5``. A file of another MD5 is moved to
    ``path + '.bad'`` and DownloadError is raised. ``folder`` is named in messages (default: that of ``path``).
    """
    folder = folder or os.path.dirname(os.path.abspath(path))
    part = path + ".part"
    hand = f"download it by hand from {url} into {folder}, or check your connection"
    try:
        _fetch(url, part, progress)
    except urllib.error.HTTPError as e:
        raise DownloadError(f"could not download {url} (HTTP {e.code} {e.reason}); {hand}") from None
    except urllib.error.URLError as e:
        raise DownloadError(f"could not download {url} ({_reason(e.reason)}); {hand}") from None
    except _Interrupted as e:
        raise DownloadError(f"the download of {url} broke off after {e.received:,} bytes ({e.reason}); the part "
                            f"is kept in {part}: run again to resume, or {hand}") from None
    digest = file_md5(part)
    if digest != md5:
        bad = _set_aside(part, path + ".bad")
        raise DownloadError(f"{url} gave a file of MD5 {digest}, but the published MD5 of {os.path.basename(path)} "
                            f"is {md5}, so it is not used (moved aside to {bad}; delete it). Run again to download "
                            f"afresh, or {hand}")
    os.replace(part, path)
    return path


def file_md5(path):
    """The MD5 of a file, as hex."""
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK_BYTES), b""):
            digest.update(block)
    return digest.hexdigest()


def extract_archive(archive, dest):
    """Unpack a tar archive (any compression) into ``dest`` after checking every member is safe: no absolute
    path or ``..``, links only to places inside ``dest``, no devices or pipes. Raises DownloadError naming
    the first unsafe member, before anything is written."""
    try:
        with tarfile.open(archive) as tar:
            members = tar.getmembers()
            for member in members:
                problem = _unsafe(member, dest)
                if problem:
                    raise DownloadError(f"{archive}: refusing to unpack {member.name!r}: {problem}. This is not "
                                        f"the official archive; delete it and download it again")
            if hasattr(tarfile, "data_filter"):       # Python 3.12, 3.11.4+, 3.10.12+: a second line of defence
                tar.extractall(dest, members=members, filter="data")
            else:
                tar.extractall(dest, members=members)
    except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile, lzma.LZMAError) as e:
        raise DownloadError(f"{archive}: cannot unpack it ({type(e).__name__}: {e}); the archive is damaged, "
                            f"delete it and download it again") from e


# ----------------------------------------------------------------------------------------------- helpers
class _Interrupted(Exception):
    def __init__(self, received, reason):
        super().__init__(reason)
        self.received, self.reason = received, reason


def _fetch(url, part, progress):
    """Write ``url`` into ``part``, continuing after the bytes already there when the server honours Range."""
    offset = os.path.getsize(part) if os.path.isfile(part) else 0
    headers = {"User-Agent": "tinyresnet"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    try:
        response = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=TIMEOUT_SECONDS)
    except urllib.error.HTTPError as e:
        if e.code == 416 and offset:                  # nothing after offset: the part is whole (the MD5 will tell)
            return
        raise
    except urllib.error.URLError:
        raise
    except (OSError, http.client.HTTPException) as e:  # a timeout or a broken reply before any byte arrived
        raise urllib.error.URLError(_reason(e)) from e
    with response:
        resumed = offset > 0 and response.status == 206 and _range_start(response) == offset
        if response.status == 206 and offset and not resumed:   # not the part we asked for: start again
            os.remove(part)
            return _fetch(url, part, progress)
        offset = offset if resumed else 0
        length = response.headers.get("Content-Length")
        total = offset + int(length) if length and length.isdigit() else None
        from tqdm.auto import tqdm

        with open(part, "ab" if resumed else "wb") as f, \
                tqdm(total=total, initial=offset, unit="B", unit_scale=True, unit_divisor=1024,
                     desc=os.path.basename(part)[: -len(".part")], disable=not progress, leave=False) as bar:
            while True:
                try:
                    chunk = response.read(CHUNK_BYTES)
                except (OSError, http.client.HTTPException) as e:      # reset, timed out, cut short
                    f.flush()
                    raise _Interrupted(f.tell(), _reason(e)) from e
                if not chunk:
                    break
                f.write(chunk)
                bar.update(len(chunk))
            received = f.tell()
    if total is not None and received < total:
        raise _Interrupted(received, f"the connection closed at {received:,} of {total:,} bytes")


def _range_start(response):
    """The first byte of a 206 response (``Content-Range: bytes START-END/TOTAL``), or None."""
    value = response.headers.get("Content-Range", "")
    try:
        return int(value.split()[1].split("-")[0])
    except (IndexError, ValueError):
        return None


def _unsafe(member, dest):
    """Why a tar member may not be unpacked into ``dest``, or None when it may."""
    name = member.name.replace("\\", "/")
    if name.startswith("/") or os.path.isabs(member.name) or os.path.splitdrive(member.name)[0]:
        return "an absolute path"
    if ".." in name.split("/"):
        return "a path with '..'"
    root = os.path.realpath(dest)
    if not _inside(os.path.realpath(os.path.join(root, name)), root):
        return "a path outside the destination"
    if member.issym() or member.islnk():
        target = member.linkname.replace("\\", "/")
        if target.startswith("/") or os.path.isabs(member.linkname) or ".." in target.split("/"):
            return f"a link to {member.linkname!r}, outside the destination"
        base = os.path.dirname(os.path.join(root, name)) if member.issym() else root
        if not _inside(os.path.realpath(os.path.join(base, target)), root):
            return f"a link to {member.linkname!r}, outside the destination"
    elif not (member.isfile() or member.isdir()):
        return "a device or pipe, not a file or folder"
    return None


def _inside(path, root):
    return os.path.commonpath([path, root]) == root


def _unpack_cifar10(archive, data_dir):
    """Unpack into a hidden folder of ``data_dir``, check the batch files are all there, then move the
    ``cifar-10-batches-py`` folder into place."""
    staging = tempfile.mkdtemp(prefix=".cifar-10-unpack-", dir=data_dir)
    try:
        extract_archive(archive, staging)
        unpacked = os.path.join(staging, CIFAR10_FOLDER)
        missing = [n for n in CIFAR10_FILES if not os.path.isfile(os.path.join(unpacked, n))]
        if missing:
            raise DownloadError(f"{archive}: the archive lacks {', '.join(f'{CIFAR10_FOLDER}/{n}' for n in missing)}; "
                                f"it is not the CIFAR-10 python version, delete it and download it again")
        target = os.path.join(data_dir, CIFAR10_FOLDER)
        if not os.path.isdir(target):
            os.replace(unpacked, target)
        else:                                         # an incomplete folder from before: complete it
            names = sorted(os.listdir(unpacked), key=lambda n: n == "data_batch_1")   # the loader's marker last
            for name in names:
                destination = os.path.join(target, name)
                if os.path.isdir(destination) and not os.path.islink(destination):
                    shutil.rmtree(destination)
                os.replace(os.path.join(unpacked, name), destination)
        return target
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _refuse_partial_batches(data_dir):
    """Batch files directly in ``data_dir`` but not all six: the loader would read them, so say so."""
    present = [n for n in CIFAR10_FILES if os.path.isfile(os.path.join(data_dir, n))]
    if present:
        missing = [n for n in CIFAR10_FILES if n not in present]
        raise DownloadError(f"{data_dir} holds {', '.join(present)} but not {', '.join(missing)}; move the "
                            f"incomplete batch files away (--download unpacks into "
                            f"{os.path.join(data_dir, CIFAR10_FOLDER)}) or add the missing ones")


def _set_aside(path, bad=None):
    """Move a file that must not be used to ``….bad`` (replacing an older one); returns the new name."""
    bad = bad or path + ".bad"
    os.replace(path, bad)
    return bad


def _reason(error):
    """A short reason from an exception or a URLError's reason."""
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    return str(error) or type(error).__name__


def _say(progress, text):
    if progress:
        print(text, file=sys.stderr)
