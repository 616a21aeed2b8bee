"""CIFAR-10 download: checked, resumable, atomic, safe to unpack, clear offline, once; and `train --download`.

A local HTTP server (127.0.0.1, a free port) serves a small archive in the real format; nothing goes to
the internet.
"""

import hashlib
import http.server
import io
import os
import pickle
import socket
import tarfile
import threading

import numpy as np
import pytest

from tinyresnet.cli import main
from tinyresnet.data import CIFAR10, DownloadError, download_cifar10, load_cifar10
from tinyresnet.data import download as dl

PER_BATCH = 8
NAMES = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]


# ------------------------------------------------------------------------------------------------- archives
def _tar(members):
    """A .tar.gz of ``members``: (TarInfo, bytes or None)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for info, data in members:
            if data is not None:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return buffer.getvalue()


def _file(name, data):
    return tarfile.TarInfo(name), data


def cifar_archive(seed=0, extra=()):
    """cifar-10-batches-py/ with data_batch_1..5, test_batch and batches.meta as the real ones are pickled:
    dicts of b'batch_label', b'labels' (a list), b'data' (N, 3072) uint8 and b'filenames'."""
    rng = np.random.default_rng(seed)
    folder = tarfile.TarInfo("cifar-10-batches-py")
    folder.type, folder.mode = tarfile.DIRTYPE, 0o755
    members = [(folder, None)]
    for name in NAMES:
        batch = {b"batch_label": name.encode(), b"labels": [int(v) for v in rng.integers(0, 10, PER_BATCH)],
                 b"data": rng.integers(0, 256, (PER_BATCH, 3072), dtype=np.uint8),
                 b"filenames": [f"img_{k}.png".encode() for k in range(PER_BATCH)]}
        members.append(_file(f"cifar-10-batches-py/{name}", pickle.dumps(batch, protocol=2)))
    meta = {b"label_names": [n.encode() for n in ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog",
                                                  "horse", "ship", "truck")],
            b"num_cases_per_batch": PER_BATCH, b"num_vis": 3072}
    members.append(_file("cifar-10-batches-py/batches.meta", pickle.dumps(meta, protocol=2)))
    return _tar(members + list(extra))


def md5(data):
    return hashlib.md5(data).hexdigest()


# --------------------------------------------------------------------------------------------- the server
class Handler(http.server.BaseHTTPRequestHandler):
    """Serves ``files`` {path: bytes}; honours ``Range: bytes=N-`` unless ``ranges`` is False; with ``cut_after``
    set, announces the full length but closes the connection after that many bytes (a dropped download)."""

    files, ranges, cut_after, requests = {}, True, None, []

    def do_GET(self):
        type(self).requests.append((self.path, self.headers.get("Range")))
        body = self.files.get(self.path)
        if body is None:
            self.send_error(404, "Not Found")
            return
        start, status = 0, 200
        wanted = self.headers.get("Range")
        if wanted and self.ranges:
            start = int(wanted.removeprefix("bytes=").split("-")[0])
            if start >= len(body):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(body)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            status = 206
        self.send_response(status)
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        self.send_header("Content-Length", str(len(body) - start))
        self.send_header("Accept-Ranges", "bytes")
        self.end_headers()
        payload = body[start:]
        if self.cut_after is not None:
            type(self).cut_after, payload = None, payload[:self.cut_after]   # only the first response is cut
            self.close_connection = True
        self.wfile.write(payload)

    def log_message(self, *args):
        pass


@pytest.fixture
def server(monkeypatch):
    """A local server of the test archive at TINYRESNET_CIFAR10_URL, its MD5 patched in as the published one."""
    archive = cifar_archive()
    handler = type("TestHandler", (Handler,), {"files": {"/cifar/cifar-10-python.tar.gz": archive},
                                                 "requests": []})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{httpd.server_address[1]}/cifar/"
    monkeypatch.setenv("TINYRESNET_CIFAR10_URL", base)          # a folder URL: the file name is appended
    monkeypatch.setattr(dl, "CIFAR10_MD5", md5(archive))        # tests only: no environment variable for this
    handler.archive, handler.base = archive, base
    yield handler
    httpd.shutdown()
    httpd.server_close()


def closed_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ------------------------------------------------------------------------------------------------ the tests
def test_download_then_load(server, tmp_path):
    data = tmp_path / "data"
    folder = download_cifar10(str(data), progress=False)
    assert folder == str(data / "cifar-10-batches-py")
    assert sorted(os.listdir(data)) == ["cifar-10-batches-py", "cifar-10-python.tar.gz"]   # no .part, no staging
    assert (data / "cifar-10-python.tar.gz").read_bytes() == server.archive
    train, test = load_cifar10(str(data))
    assert len(train) == 5 * PER_BATCH and len(test) == PER_BATCH and train.classes[9] == "truck"
    assert server.requests == [("/cifar/cifar-10-python.tar.gz", None)]


def test_cifar10_class_downloads_once(server, tmp_path, capsys):
    train = CIFAR10(str(tmp_path), train=True, download=True)
    test = CIFAR10(str(tmp_path), train=False, download=True)           # already there: no second request
    assert len(server.requests) == 1
    assert len(train) == 5 * PER_BATCH and len(test) == PER_BATCH and train.image_shape == (3, 32, 32)
    assert train.name == "cifar10-train" and test.name == "cifar10-test" and train.train and not test.train
    assert train.class_to_idx["cat"] == 3
    image, label = test[0]
    assert image.dtype == np.float32 and image.shape == (3, 32, 32) and 0 <= label < 10
    assert "CIFAR-10 is ready" in capsys.readouterr().err
    assert len(CIFAR10(str(tmp_path), train=False)) == PER_BATCH      # download=False reads what is there


def test_archive_already_there_is_checked_and_unpacked(server, tmp_path):
    (tmp_path / "cifar-10-python.tar.gz").write_bytes(server.archive)   # downloaded by hand
    download_cifar10(str(tmp_path), progress=False)
    assert server.requests == [] and (tmp_path / "cifar-10-batches-py" / "test_batch").is_file()


def test_md5_mismatch_is_refused_and_set_aside(server, tmp_path, monkeypatch):
    monkeypatch.setattr(dl, "CIFAR10_MD5", "0" * 32)
    with pytest.raises(DownloadError) as err:
        download_cifar10(str(tmp_path), progress=False)
    message = str(err.value)
    assert md5(server.archive) in message and "0" * 32 in message and "not used" in message
    assert "Run again to download afresh" in message
    assert sorted(os.listdir(tmp_path)) == ["cifar-10-python.tar.gz.bad"]     # never unpacked, no final name
    with pytest.raises(FileNotFoundError):
        load_cifar10(str(tmp_path))


def test_a_wrong_archive_already_there_is_replaced(server, tmp_path, capsys):
    (tmp_path / "cifar-10-python.tar.gz").write_bytes(b"not the archive")
    download_cifar10(str(tmp_path), progress=False)
    assert (tmp_path / "cifar-10-python.tar.gz.bad").read_bytes() == b"not the archive"
    assert (tmp_path / "cifar-10-python.tar.gz").read_bytes() == server.archive
    assert "moved it aside" in capsys.readouterr().err


def test_partial_download_resumes_with_range(server, tmp_path):
    half = len(server.archive) // 2
    (tmp_path / "cifar-10-python.tar.gz.part").write_bytes(server.archive[:half])
    download_cifar10(str(tmp_path), progress=True)                      # the progress bar starts at half
    assert server.requests == [("/cifar/cifar-10-python.tar.gz", f"bytes={half}-")]
    assert (tmp_path / "cifar-10-python.tar.gz").read_bytes() == server.archive
    assert not (tmp_path / "cifar-10-python.tar.gz.part").exists()


def test_a_dropped_connection_keeps_the_part_and_the_next_run_resumes(server, tmp_path):
    server.cut_after = 1000
    with pytest.raises(DownloadError, match="broke off after 1,000 bytes.*run again to resume"):
        download_cifar10(str(tmp_path), progress=False)
    assert os.listdir(tmp_path) == ["cifar-10-python.tar.gz.part"]    # only the part: no final name yet
    download_cifar10(str(tmp_path), progress=False)
    assert server.requests[-1] == ("/cifar/cifar-10-python.tar.gz", "bytes=1000-")
    assert (tmp_path / "cifar-10-python.tar.gz").read_bytes() == server.archive


def test_a_server_without_ranges_starts_again(server, tmp_path):
    server.ranges = False
    (tmp_path / "cifar-10-python.tar.gz.part").write_bytes(b"x" * 300)       # would corrupt an append
    download_cifar10(str(tmp_path), progress=False)
    assert (tmp_path / "cifar-10-python.tar.gz").read_bytes() == server.archive


def test_a_complete_part_is_verified_not_downloaded(server, tmp_path):
    (tmp_path / "cifar-10-python.tar.gz.part").write_bytes(server.archive)  # the server answers 416
    download_cifar10(str(tmp_path), progress=False)
    assert (tmp_path / "cifar-10-batches-py" / "data_batch_5").is_file()


def _symlink(name, target):
    info = tarfile.TarInfo(name)
    info.type, info.linkname = tarfile.SYMTYPE, target
    return info, None


def _hardlink(name, target):
    info = tarfile.TarInfo(name)
    info.type, info.linkname = tarfile.LNKTYPE, target
    return info, None


@pytest.mark.parametrize("member, why", [
    (_file("../evil.txt", b"owned"), "'..'"),
    (_file("cifar-10-batches-py/../../evil.txt", b"owned"), "'..'"),
    (_file("/tmp/tinyresnet-evil.txt", b"owned"), "absolute path"),
    (_symlink("cifar-10-batches-py/escape", "../../outside"), "outside the destination"),
    (_symlink("cifar-10-batches-py/escape", "/etc/passwd"), "outside the destination"),
    (_hardlink("cifar-10-batches-py/escape", "/etc/passwd"), "outside the destination"),
])
def test_path_traversal_archive_is_refused(server, tmp_path, monkeypatch, member, why):
    evil = cifar_archive(extra=[member])
    server.files["/cifar/cifar-10-python.tar.gz"] = evil
    monkeypatch.setattr(dl, "CIFAR10_MD5", md5(evil))        # it passes the checksum: the unpack must refuse it
    data = tmp_path / "data"
    with pytest.raises(DownloadError, match=f"refusing to unpack .*{why}"):
        download_cifar10(str(data), progress=False)
    assert not (tmp_path / "evil.txt").exists() and not os.path.exists("/tmp/tinyresnet-evil.txt")
    assert sorted(os.listdir(data)) == ["cifar-10-python.tar.gz.bad"]        # nothing unpacked, archive aside


def test_extract_archive_refuses_before_writing_anything(tmp_path):
    archive = tmp_path / "evil.tar.gz"
    archive.write_bytes(_tar([_file("fine.txt", b"ok"), _file("../evil.txt", b"owned")]))
    (tmp_path / "out").mkdir()
    with pytest.raises(DownloadError, match="'../evil.txt'"):
        dl.extract_archive(str(archive), str(tmp_path / "out"))
    assert os.listdir(tmp_path / "out") == [] and not (tmp_path / "evil.txt").exists()


@pytest.mark.parametrize("has_data_filter", [True, False])
def test_extract_archive_with_and_without_tarfiles_data_filter(tmp_path, monkeypatch, has_data_filter):
    if not has_data_filter:                   # Python before 3.10.12 / 3.11.4: the member checks alone
        monkeypatch.delattr(tarfile, "data_filter", raising=False)
    elif not hasattr(tarfile, "data_filter"):
        pytest.skip("this Python's tarfile has no data filter")
    archive = tmp_path / "a.tar.gz"
    archive.write_bytes(cifar_archive(extra=[_symlink("cifar-10-batches-py/alias", "test_batch")]))
    dl.extract_archive(str(archive), str(tmp_path / "out"))
    assert (tmp_path / "out" / "cifar-10-batches-py" / "alias").read_bytes() == \
        (tmp_path / "out" / "cifar-10-batches-py" / "test_batch").read_bytes()    # a link inside is fine
    archive.write_bytes(cifar_archive(extra=[_symlink("cifar-10-batches-py/up", "../..")]))
    with pytest.raises(DownloadError, match="refusing to unpack 'cifar-10-batches-py/up'"):
        dl.extract_archive(str(archive), str(tmp_path / "out2"))


def test_a_damaged_archive_is_named(tmp_path):
    archive = tmp_path / "cut.tar.gz"
    archive.write_bytes(cifar_archive()[:2000])
    with pytest.raises(DownloadError, match="cut.tar.gz: cannot unpack it .*damaged"):
        dl.extract_archive(str(archive), str(tmp_path / "out"))


def test_offline_gives_one_clear_line(tmp_path, monkeypatch):
    url = f"http://127.0.0.1:{closed_port()}/cifar-10-python.tar.gz"
    monkeypatch.setenv("TINYRESNET_CIFAR10_URL", url)
    with pytest.raises(DownloadError) as err:
        download_cifar10(str(tmp_path), progress=False)
    message = str(err.value)
    assert message.startswith(f"could not download {url} (") and "\n" not in message
    assert f"download it by hand from {url} into {tmp_path}, or check your connection" in message
    assert "refused" in message.lower()


def test_http_error_is_named(server, tmp_path, monkeypatch):
    monkeypatch.setenv("TINYRESNET_CIFAR10_URL", server.base + "missing.tar.gz")
    with pytest.raises(DownloadError, match="could not download .*missing.tar.gz \\(HTTP 404"):
        download_cifar10(str(tmp_path), progress=False)


def test_the_official_url_and_md5_are_the_defaults(monkeypatch):
    monkeypatch.delenv("TINYRESNET_CIFAR10_URL", raising=False)
    assert dl.cifar10_url() == "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
    assert dl.CIFAR10_MD5 == "c58f30108f718f92721af3b95e74349a"
    monkeypatch.setenv("TINYRESNET_CIFAR10_URL", "https://mirror.example/cifar.tgz")
    assert dl.cifar10_url() == "https://mirror.example/cifar.tgz"


def test_data_already_there_is_not_downloaded(tmp_path, monkeypatch):
    monkeypatch.setenv("TINYRESNET_CIFAR10_URL", f"http://127.0.0.1:{closed_port()}/")   # would fail if used
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    for name in NAMES:
        (folder / name).write_bytes(b"")
    assert download_cifar10(str(tmp_path), progress=False) == str(folder)


# ------------------------------------------------------------------------------------------------- the CLI
def test_cli_train_download(server, tmp_path, capsys):
    data = tmp_path / "data"
    args = ["train", "--dataset", "cifar10", "--download", "--data-dir", str(data), "--model", "resnet20",
            "--subset", "32", "--batch-size", "16", "--epochs", "1", "--quiet", "--out", str(tmp_path / "run")]
    assert main(args) == 0
    assert (data / "cifar-10-batches-py" / "data_batch_1").is_file()
    assert (tmp_path / "run" / "best.npz").is_file() and "final test accuracy" in capsys.readouterr().out
    assert len(server.requests) == 1


def test_cli_download_offline_and_for_other_datasets(tmp_path, monkeypatch, capsys):
    url = f"http://127.0.0.1:{closed_port()}/cifar-10-python.tar.gz"
    monkeypatch.setenv("TINYRESNET_CIFAR10_URL", url)
    quick = ["--epochs", "1", "--quiet", "--out", str(tmp_path / "run")]
    assert main(["train", "--dataset", "cifar10", "--download", "--data-dir", str(tmp_path), *quick]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: could not download {url}") and err.count("\n") == 1
    assert main(["train", "--dataset", "digits", "--download", *quick]) == 1
    assert "--download fetches CIFAR-10 only" in capsys.readouterr().err


def test_cli_ctrl_c_during_the_download_says_it_resumes(tmp_path, monkeypatch, capsys):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(dl, "download_cifar10", interrupted)
    assert main(["train", "--dataset", "cifar10", "--download", "--data-dir", str(tmp_path), "--quiet",
                 "--out", str(tmp_path / "run")]) == 130
    assert "run the same command again to resume" in capsys.readouterr().err
