"""Tests for camtool.data.download against a real HTTP server on 127.0.0.1 (no internet)."""

from __future__ import annotations

import hashlib
import io
import json
import re
import socket
import tarfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from PIL import Image

from camtool.core.imagenet import Checksum, ImagenetteArchive
from camtool.data import archive as archive_module
from camtool.data.archive import MARKER_NAME, safe_extract, verify_checksum
from camtool.data.download import ARCHIVES, download_dataset
from camtool.errors import CamtoolError, ConfigError, InputError
from camtool.process import LOCK_NAME, folder_lock

TOP = "imagenette2-160"
FILENAME = "imagenette2-160.tgz"


# --- helpers ----------------------------------------------------------------------------------


def _jpeg(color: tuple[int, int, int]) -> bytes:
    """Return a tiny JPEG of one colour."""
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), color).save(buf, format="JPEG")
    return buf.getvalue()


def _add_dir(tar: tarfile.TarFile, name: str) -> None:
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE
    info.mode = 0o755
    tar.addfile(info)


def _add_file(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o644
    tar.addfile(info, io.BytesIO(data))


def make_imagenette_tgz(
    path: Path, top: str = TOP, *, splits: tuple[str, ...] = ("train", "val")
) -> bytes:
    """Write a tiny archive in Imagenette's layout and return its bytes."""
    with tarfile.open(path, "w:gz") as tar:
        _add_dir(tar, top)
        for i, split in enumerate(splits):
            _add_dir(tar, f"{top}/{split}")
            for j, wnid in enumerate(("n01440764", "n02102040")):
                _add_dir(tar, f"{top}/{split}/{wnid}")
                _add_file(tar, f"{top}/{split}/{wnid}/x.JPEG", _jpeg((40 * i, 90 * j, 200)))
    return path.read_bytes()


@dataclass
class FakeServer:
    """State shared with the request handler; ``mode`` picks the misbehaviour."""

    payload: bytes
    filename: str = FILENAME
    mode: str = "normal"  # normal | cut_once | ignore_range | 404
    requests: list[dict[str, str | None]] = field(default_factory=list)
    cut_done: bool = False
    port: int = 0

    def url(self, name: str | None = None) -> str:
        return f"http://127.0.0.1:{self.port}/{name or self.filename}"

    @property
    def ranges(self) -> list[str | None]:
        return [r["range"] for r in self.requests]


def _handler_for(state: FakeServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            return

        def do_GET(self) -> None:
            state.requests.append({"path": self.path, "range": self.headers.get("Range")})
            if state.mode == "404" or self.path != f"/{state.filename}":
                self.send_error(404, "Not Found")
                return
            data = state.payload
            size = len(data)
            if state.mode == "cut_once" and not state.cut_done:
                state.cut_done = True
                self.send_response(200)
                self.send_header("Content-Length", str(size))
                self.end_headers()
                self.wfile.write(data[: size // 2])
                self.wfile.flush()
                self.close_connection = True
                return
            requested = self.headers.get("Range")
            if requested and state.mode != "ignore_range":
                match = re.fullmatch(r"bytes=(\d+)-", requested)
                assert match is not None
                start = int(match.group(1))
                if start >= size:
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{size}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{size - 1}/{size}")
                self.send_header("Content-Length", str(size - start))
                self.end_headers()
                self.wfile.write(data[start:])
                return
            self.send_response(200)
            self.send_header("Content-Length", str(size))
            self.end_headers()
            self.wfile.write(data)

    return Handler


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep urllib from sending requests for 127.0.0.1 to a proxy."""
    for name in ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("ALL_PROXY", raising=False)


@pytest.fixture
def archive_bytes(tmp_path: Path) -> bytes:
    return make_imagenette_tgz(tmp_path / "source.tgz")


@pytest.fixture
def server(archive_bytes: bytes) -> Iterator[FakeServer]:
    state = FakeServer(payload=archive_bytes)
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(state))
    state.port = httpd.server_address[1]
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


@pytest.fixture
def known(monkeypatch: pytest.MonkeyPatch, server: FakeServer) -> ImagenetteArchive:
    """Point the official ``imagenette-160`` entry at the test server, with the true checksum."""
    spec = ImagenetteArchive(
        name="imagenette-160",
        url=server.url(),
        filename=FILENAME,
        folder=TOP,
        size=len(server.payload),
        checksum=Checksum("sha256", hashlib.sha256(server.payload).hexdigest()),
    )
    monkeypatch.setitem(ARCHIVES, "imagenette-160", spec)
    return spec


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _refused_port() -> int:
    """Return a port on 127.0.0.1 that nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- downloads --------------------------------------------------------------------------------


def test_clean_download_verifies_marks_and_second_run_makes_no_request(
    tmp_path: Path, server: FakeServer, known: ImagenetteArchive
) -> None:
    data_dir = tmp_path / "data"
    calls: list[tuple[int, int | None]] = []
    result = download_dataset(
        "imagenette-160", data_dir, progress=lambda d, t: calls.append((d, t))
    )

    size = len(server.payload)
    assert result.dataset_dir == data_dir / TOP
    assert result.archive == data_dir / FILENAME and result.archive.read_bytes() == server.payload
    assert (result.downloaded_bytes, result.resumed_from, result.already_present) == (
        size,
        0,
        False,
    )
    assert (data_dir / TOP / "train" / "n01440764" / "x.JPEG").is_file()
    assert (data_dir / TOP / "val" / "n02102040" / "x.JPEG").is_file()
    assert (data_dir / TOP / MARKER_NAME).is_file()
    assert (
        known.checksum is not None
        and known.checksum.hex in (data_dir / TOP / MARKER_NAME).read_text()
    )
    assert not (data_dir / (FILENAME + ".part")).exists()
    assert sorted(p.name for p in data_dir.iterdir()) == sorted([TOP, FILENAME, LOCK_NAME])
    assert calls[-1] == (size, size)
    assert all(t == size for _, t in calls) and [d for d, _ in calls] == sorted(d for d, _ in calls)
    assert server.ranges == [None]

    again = download_dataset("imagenette-160", data_dir)
    assert again.already_present and again.dataset_dir == data_dir / TOP
    assert (again.archive, again.downloaded_bytes) == (None, 0)
    assert len(server.requests) == 1  # nothing was requested


def test_force_downloads_again(
    tmp_path: Path, server: FakeServer, known: ImagenetteArchive
) -> None:
    data_dir = tmp_path / "data"
    download_dataset("imagenette-160", data_dir)
    result = download_dataset("imagenette-160", data_dir, force=True)
    assert not result.already_present and result.downloaded_bytes == len(server.payload)
    assert len(server.requests) == 2
    assert (data_dir / TOP / MARKER_NAME).is_file()


def test_interrupted_download_resumes_with_range(
    tmp_path: Path, server: FakeServer, known: ImagenetteArchive
) -> None:
    server.mode = "cut_once"
    data_dir = tmp_path / "data"
    half = len(server.payload) // 2
    with pytest.raises(CamtoolError, match="interrupted") as info:
        download_dataset("imagenette-160", data_dir)
    assert "resume" in str(info.value) and "--archive" in str(info.value)
    part = data_dir / (FILENAME + ".part")
    assert part.stat().st_size == half
    assert not (data_dir / TOP).exists()

    calls: list[tuple[int, int | None]] = []
    result = download_dataset(
        "imagenette-160", data_dir, progress=lambda d, t: calls.append((d, t))
    )
    assert server.ranges == [None, f"bytes={half}-"]
    assert result.resumed_from == half
    assert result.downloaded_bytes == len(server.payload) - half
    assert calls[0] == (half, len(server.payload)) and calls[-1][0] == len(server.payload)
    assert (data_dir / FILENAME).read_bytes() == server.payload
    assert (data_dir / TOP / MARKER_NAME).is_file() and not part.exists()


def test_server_ignoring_range_starts_over(
    tmp_path: Path, server: FakeServer, known: ImagenetteArchive
) -> None:
    server.mode = "ignore_range"
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    (data_dir / (FILENAME + ".part")).write_bytes(b"garbage that is not the archive")
    result = download_dataset("imagenette-160", data_dir)
    assert server.ranges == ["bytes=31-"]
    assert result.resumed_from == 0 and result.downloaded_bytes == len(server.payload)
    assert (data_dir / FILENAME).read_bytes() == server.payload
    assert (data_dir / TOP / MARKER_NAME).is_file()


def test_range_not_satisfiable_on_a_whole_part_file(tmp_path: Path, server: FakeServer) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    (data_dir / (FILENAME + ".part")).write_bytes(server.payload)
    result = download_dataset("custom", data_dir, url=server.url(), sha256=_sha(server.payload))
    assert server.ranges == [f"bytes={len(server.payload)}-"]  # answered 416
    assert result.downloaded_bytes == 0 and result.resumed_from == len(server.payload)
    assert (result.dataset_dir / MARKER_NAME).is_file()


def test_range_not_satisfiable_on_an_oversized_part_file_starts_over(
    tmp_path: Path, server: FakeServer
) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    too_long = server.payload + b"extra bytes"
    (data_dir / (FILENAME + ".part")).write_bytes(too_long)
    result = download_dataset("custom", data_dir, url=server.url(), sha256=_sha(server.payload))
    assert server.ranges == [f"bytes={len(too_long)}-", None]
    assert result.resumed_from == 0 and result.downloaded_bytes == len(server.payload)
    assert (data_dir / FILENAME).read_bytes() == server.payload


def test_wrong_checksum_extracts_nothing_and_deletes_part(
    tmp_path: Path, server: FakeServer
) -> None:
    data_dir = tmp_path / "data"
    wrong = "0" * 64
    with pytest.raises(CamtoolError) as info:
        download_dataset("imagenette-160", data_dir, url=server.url(), sha256=wrong)
    message = str(info.value)
    assert f"expected {wrong}" in message and f"got {_sha(server.payload)}" in message
    assert "\n" not in message
    assert not data_dir.exists()  # created by this run, left empty: removed


def test_known_checksum_is_checked_on_the_official_file(
    tmp_path: Path, server: FakeServer, monkeypatch: pytest.MonkeyPatch, known: ImagenetteArchive
) -> None:
    bad = ImagenetteArchive(**{**known.__dict__, "checksum": Checksum("md5", "f" * 32)})
    monkeypatch.setitem(ARCHIVES, "imagenette-160", bad)
    data_dir = tmp_path / "data"
    with pytest.raises(CamtoolError, match="md5 checksum mismatch"):
        download_dataset("imagenette-160", data_dir)
    assert not data_dir.exists()


def test_mirror_url_for_unknown_dataset_uses_the_archive_top_folder(
    tmp_path: Path, server: FakeServer
) -> None:
    server.filename = "mirror.tgz"
    data_dir = tmp_path / "data"
    result = download_dataset("custom", data_dir, url=server.url())
    assert result.dataset_dir == data_dir / TOP
    assert result.archive == data_dir / "mirror.tgz"
    assert (data_dir / TOP / "train").is_dir() and (data_dir / TOP / MARKER_NAME).is_file()

    again = download_dataset("custom", data_dir, url=server.url())  # top folder != "mirror"
    assert again.already_present and again.dataset_dir == data_dir / TOP
    assert len(server.requests) == 1  # recognised from the marker: no request, no re-extract
    assert json.loads((data_dir / TOP / MARKER_NAME).read_text())["folder"] == TOP


def test_no_network_leaves_no_folder_this_run_created(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{_refused_port()}/{FILENAME}"
    with pytest.raises(CamtoolError, match="could not download"):
        download_dataset("imagenette-160", tmp_path / "new" / "data", url=url, timeout=5)
    assert list(tmp_path.iterdir()) == []
    kept = tmp_path / "kept"
    kept.mkdir()
    with pytest.raises(CamtoolError, match="could not download"):
        download_dataset("imagenette-160", kept, url=url, timeout=5)
    assert kept.is_dir()  # it was there before: left alone


def test_cli_download_json_schema(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from camtool.cli import app

    monkeypatch.chdir(tmp_path)
    manual = tmp_path / "mine.tgz"
    make_imagenette_tgz(manual)
    for present in (False, True):
        result = CliRunner().invoke(app, ["download", "--archive", str(manual), "--json"])
        assert result.exit_code == 0 and result.stderr == ""
        doc = json.loads(result.stdout)
        assert doc == {
            "dataset": "imagenette-160",
            "dataset_dir": str(Path("data") / TOP),
            "archive": None if present else str(manual),
            "downloaded_bytes": 0,
            "resumed_from": 0,
            "already_present": present,
        }


def test_cli_download_offline_is_one_line_and_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from camtool.cli import app

    monkeypatch.chdir(tmp_path)
    url = f"http://127.0.0.1:{_refused_port()}/{FILENAME}"
    result = CliRunner().invoke(app, ["download", "--url", url])
    assert result.exit_code == 1
    assert result.stderr.startswith("camtool: error: could not download")
    assert len(result.stderr.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []  # no empty data/ behind


def test_existing_verified_archive_is_not_downloaded_again(
    tmp_path: Path, server: FakeServer, known: ImagenetteArchive
) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    (data_dir / FILENAME).write_bytes(server.payload)
    result = download_dataset("imagenette-160", data_dir)
    assert server.requests == [] and result.downloaded_bytes == 0
    assert (data_dir / TOP / MARKER_NAME).is_file()


def test_existing_damaged_archive_is_downloaded_again(
    tmp_path: Path, server: FakeServer, known: ImagenetteArchive
) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    (data_dir / FILENAME).write_bytes(b"damaged")
    result = download_dataset("imagenette-160", data_dir)
    assert len(server.requests) == 1 and result.downloaded_bytes == len(server.payload)
    assert (data_dir / FILENAME).read_bytes() == server.payload


def test_stale_folder_without_marker_is_replaced(
    tmp_path: Path, server: FakeServer, known: ImagenetteArchive
) -> None:
    data_dir = tmp_path / "data"
    (data_dir / TOP / "train").mkdir(parents=True)
    (data_dir / TOP / "val").mkdir()
    (data_dir / TOP / "stale.txt").write_text("left from an old run")
    result = download_dataset("imagenette-160", data_dir)
    assert not result.already_present and len(server.requests) == 1
    assert not (data_dir / TOP / "stale.txt").exists()
    assert (data_dir / TOP / MARKER_NAME).is_file()
    assert sorted(p.name for p in data_dir.iterdir()) == sorted([TOP, FILENAME, LOCK_NAME])


# --- errors -----------------------------------------------------------------------------------


def test_connection_refused_says_how_to_download_by_hand(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{_refused_port()}/{FILENAME}"
    with pytest.raises(CamtoolError) as info:
        download_dataset("imagenette-160", tmp_path / "data", url=url, timeout=5)
    message = str(info.value)
    assert url in message and "refused" in message.lower()
    assert "camtool download --archive FILE" in message and "\n" not in message


def test_http_404_says_how_to_download_by_hand(tmp_path: Path, server: FakeServer) -> None:
    server.mode = "404"
    with pytest.raises(CamtoolError) as info:
        download_dataset("imagenette-160", tmp_path / "data", url=server.url())
    message = str(info.value)
    assert "HTTP 404" in message and "--archive" in message and "\n" not in message
    assert not (tmp_path / "data" / (FILENAME + ".part")).exists()


def test_silent_server_times_out(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(1)  # accepts connections into the backlog but never answers
        url = f"http://127.0.0.1:{sock.getsockname()[1]}/{FILENAME}"
        with pytest.raises(CamtoolError, match=r"timed out.*--archive"):
            download_dataset("custom", tmp_path / "data", url=url, timeout=0.3)


def test_unknown_dataset_and_bad_options_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="imagenette-160"):
        download_dataset("imagewoof", tmp_path)
    with pytest.raises(ConfigError, match="http"):
        download_dataset("imagenette-160", tmp_path, url="ftp://example.org/x.tgz")
    with pytest.raises(ConfigError, match="64 hexadecimal"):
        download_dataset("imagenette-160", tmp_path, url="http://127.0.0.1:9/x", sha256="abc")
    assert list(tmp_path.iterdir()) == []


# --- --archive --------------------------------------------------------------------------------


def test_archive_option_verifies_known_checksum(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    manual = tmp_path / "downloads" / FILENAME
    manual.parent.mkdir()
    data = make_imagenette_tgz(manual)
    spec = ImagenetteArchive(
        "imagenette-160", "http://127.0.0.1:9/", FILENAME, TOP, len(data), None
    )
    monkeypatch.setitem(ARCHIVES, "imagenette-160", spec)

    monkeypatch.setitem(
        ARCHIVES,
        "imagenette-160",
        ImagenetteArchive(**{**spec.__dict__, "checksum": Checksum("sha256", "1" * 64)}),
    )
    data_dir = tmp_path / "data"
    with pytest.raises(InputError, match=f"expected {'1' * 64}, got {_sha(data)}"):
        download_dataset("imagenette-160", data_dir, archive=manual)
    assert manual.is_file()  # the user's own file is not deleted
    assert not (data_dir / TOP).exists()

    monkeypatch.setitem(
        ARCHIVES,
        "imagenette-160",
        ImagenetteArchive(**{**spec.__dict__, "checksum": Checksum("sha256", _sha(data))}),
    )
    result = download_dataset("imagenette-160", data_dir, archive=manual)
    assert result.archive == manual and result.downloaded_bytes == 0
    assert result.dataset_dir == data_dir / TOP and (data_dir / TOP / MARKER_NAME).is_file()
    assert manual.is_file()


def test_archive_with_another_name_is_extracted_as_is(tmp_path: Path) -> None:
    manual = tmp_path / "my-copy.tgz"
    make_imagenette_tgz(manual)
    # The official imagenette-160 checksum would not match this tiny archive: it is not applied.
    result = download_dataset("imagenette-160", tmp_path / "data", archive=manual)
    assert result.dataset_dir == tmp_path / "data" / TOP
    assert (result.dataset_dir / "val" / "n01440764" / "x.JPEG").is_file()


def test_archive_option_with_sha256(tmp_path: Path) -> None:
    manual = tmp_path / "my-copy.tgz"
    make_imagenette_tgz(manual)
    with pytest.raises(InputError, match="mismatch"):
        download_dataset("imagenette-160", tmp_path / "data", archive=manual, sha256="2" * 64)
    assert not (tmp_path / "data" / TOP).exists()


def test_missing_archive_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not found"):
        download_dataset("imagenette-160", tmp_path / "data", archive=tmp_path / "nope.tgz")


def test_archive_without_train_and_val_is_refused(tmp_path: Path) -> None:
    manual = tmp_path / "odd.tgz"
    make_imagenette_tgz(manual, splits=("train",))
    with pytest.raises(InputError, match="val/"):
        download_dataset("imagenette-160", tmp_path / "data", archive=manual)
    assert not (tmp_path / "data").exists()


def test_interrupted_extraction_leaves_nothing_half_made(
    tmp_path: Path, server: FakeServer, known: ImagenetteArchive, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = tarfile.TarFile.extractall

    def extract_then_die(self: tarfile.TarFile, *args: object, **kwargs: object) -> None:
        original(self, *args, **kwargs)  # type: ignore[arg-type]
        raise KeyboardInterrupt

    monkeypatch.setattr(tarfile.TarFile, "extractall", extract_then_die)
    data_dir = tmp_path / "data"
    with pytest.raises(KeyboardInterrupt):
        download_dataset("imagenette-160", data_dir)
    assert sorted(p.name for p in data_dir.iterdir()) == sorted(
        [FILENAME, LOCK_NAME]
    )  # the archive

    monkeypatch.setattr(tarfile.TarFile, "extractall", original)
    result = download_dataset("imagenette-160", data_dir)
    assert len(server.requests) == 1  # the kept archive was reused
    assert (result.dataset_dir / MARKER_NAME).is_file()


# --- safe extraction --------------------------------------------------------------------------


def _evil_archive(path: Path, kind: str, outside: Path) -> None:
    with tarfile.open(path, "w:gz") as tar:
        _add_dir(tar, TOP)
        _add_dir(tar, f"{TOP}/train")
        _add_file(tar, f"{TOP}/train/ok.txt", b"fine")
        if kind == "dotdot":
            _add_file(tar, f"{TOP}/../../evil.txt", b"escaped")
        elif kind == "absolute":
            _add_file(tar, str(outside / "evil.txt"), b"escaped")
        elif kind == "symlink":
            link = tarfile.TarInfo(f"{TOP}/link")
            link.type = tarfile.SYMTYPE
            link.linkname = "../.."
            tar.addfile(link)
            _add_file(tar, f"{TOP}/link/evil.txt", b"escaped")
        elif kind == "symlink_absolute":
            link = tarfile.TarInfo(f"{TOP}/link")
            link.type = tarfile.SYMTYPE
            link.linkname = str(outside)
            tar.addfile(link)
        elif kind == "hardlink":
            link = tarfile.TarInfo(f"{TOP}/hard")
            link.type = tarfile.LNKTYPE
            link.linkname = "../evil.txt"
            tar.addfile(link)
        elif kind == "device":
            dev = tarfile.TarInfo(f"{TOP}/null")
            dev.type = tarfile.CHRTYPE
            dev.devmajor, dev.devminor = 1, 3
            tar.addfile(dev)
        elif kind == "fifo":
            fifo = tarfile.TarInfo(f"{TOP}/pipe")
            fifo.type = tarfile.FIFOTYPE
            tar.addfile(fifo)
        _add_file(tar, f"{TOP}/val/late.txt", b"after the bad member")


@pytest.mark.parametrize(
    ("kind", "words"),
    [
        ("dotdot", "'..'"),
        ("absolute", "absolute path"),
        ("symlink", "symlink pointing outside"),
        ("symlink_absolute", "symlink to an absolute path"),
        ("hardlink", "hard link pointing outside"),
        ("device", "device"),
        ("fifo", "FIFO"),
    ],
)
def test_unsafe_archives_are_refused_before_extracting_anything(
    tmp_path: Path, kind: str, words: str
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    dest = tmp_path / "data" / "inner"
    archive = tmp_path / "evil.tgz"
    _evil_archive(archive, kind, outside)
    with pytest.raises(InputError, match="refusing to extract") as info:
        safe_extract(archive, dest)
    assert words in str(info.value) and "nothing was extracted" in str(info.value)
    assert list(dest.iterdir()) == []
    assert list(outside.iterdir()) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "evil.tgz", "outside"]
    assert [p.name for p in (tmp_path / "data").iterdir()] == ["inner"]


def test_unsafe_archive_given_with_archive_option(tmp_path: Path) -> None:
    archive = tmp_path / "evil.tgz"
    _evil_archive(archive, "symlink", tmp_path)
    with pytest.raises(InputError, match="refusing"):
        download_dataset("imagenette-160", tmp_path / "data", archive=archive)
    assert not (tmp_path / "data").exists()
    assert not (tmp_path / "evil.txt").exists()


def test_safe_extract_allows_links_inside_and_returns_top(tmp_path: Path) -> None:
    archive = tmp_path / "ok.tgz"
    with tarfile.open(archive, "w:gz") as tar:
        _add_dir(tar, "./top")
        _add_file(tar, "./top/a.txt", b"a")
        link = tarfile.TarInfo("./top/b.txt")
        link.type = tarfile.SYMTYPE
        link.linkname = "a.txt"
        tar.addfile(link)
    top = safe_extract(archive, tmp_path / "out")
    assert top == tmp_path / "out" / "top"
    assert (top / "b.txt").is_symlink() and (top / "b.txt").read_bytes() == b"a"
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["top"]


def test_safe_extract_needs_a_single_top_folder(tmp_path: Path) -> None:
    archive = tmp_path / "two.tgz"
    with tarfile.open(archive, "w:gz") as tar:
        _add_file(tar, "one/a.txt", b"a")
        _add_file(tar, "two/b.txt", b"b")
    with pytest.raises(InputError, match="single top-level folder, found 2: one, two"):
        safe_extract(archive, tmp_path / "out")
    assert list((tmp_path / "out").iterdir()) == []

    flat = tmp_path / "flat.tgz"
    with tarfile.open(flat, "w:gz") as tar:
        _add_file(tar, "a.txt", b"a")
    with pytest.raises(InputError, match="is a file at its top level"):
        safe_extract(flat, tmp_path / "out")


def test_safe_extract_rejects_a_file_that_is_not_a_tar(tmp_path: Path) -> None:
    bogus = tmp_path / "bogus.tgz"
    bogus.write_bytes(b"<html>not found</html>")
    with pytest.raises(InputError, match=r"cannot extract bogus\.tgz"):
        safe_extract(bogus, tmp_path / "out")
    assert list((tmp_path / "out").iterdir()) == []


def test_safe_extract_removes_leftovers_of_a_killed_run(tmp_path: Path) -> None:
    out = tmp_path / "out"
    (out / ".camtool-extract-old123" / TOP).mkdir(parents=True)
    archive = tmp_path / "a.tgz"
    make_imagenette_tgz(archive)
    safe_extract(archive, out)
    assert [p.name for p in out.iterdir()] == [TOP]


# --- checksums --------------------------------------------------------------------------------


def test_verify_checksum_sha256_and_md5(tmp_path: Path) -> None:
    path = tmp_path / "f.bin"
    path.write_bytes(b"hello")
    verify_checksum(path, Checksum("sha256", _sha(b"hello").upper()))
    verify_checksum(path, Checksum("MD5", hashlib.md5(b"hello").hexdigest()))
    with pytest.raises(CamtoolError, match=r"md5 checksum mismatch for f\.bin: expected 0+, got"):
        verify_checksum(path, Checksum("md5", "0" * 32))


def test_checksum_rejects_bad_values() -> None:
    with pytest.raises(ConfigError, match="unsupported"):
        Checksum("sha1", "0" * 40)
    with pytest.raises(ConfigError, match="32 hexadecimal"):
        Checksum("md5", "0" * 64)
    with pytest.raises(ConfigError, match="64 hexadecimal"):
        Checksum("sha256", "z" * 64)
    assert str(Checksum("sha256", "A" * 64)) == "sha256:" + "a" * 64


def test_tarfile_data_filter_backs_up_our_own_checks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        archive_module, "_member_problem", lambda member: None
    )  # disable our own checks
    outside = tmp_path / "outside"
    outside.mkdir()
    archive = tmp_path / "evil.tgz"
    _evil_archive(archive, "symlink", outside)
    with pytest.raises(InputError, match=r"refusing to extract evil\.tgz"):
        safe_extract(archive, tmp_path / "out")
    assert list((tmp_path / "out").iterdir()) == []
    assert not (tmp_path / "evil.txt").exists()


def test_a_second_download_into_the_same_folder_is_refused_in_one_line(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with folder_lock(data, "download"), pytest.raises(CamtoolError) as caught:
        download_dataset("imagenette-160", data, archive=tmp_path / "absent.tgz")
    assert "in use by another camtool download run" in caught.value.message
    assert not data.exists()  # the folder the holder made is gone with its lock
