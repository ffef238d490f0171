"""Getting raw files: downloads (file:// and a local HTTP server with Range), checksums, archives,
partial and corrupted downloads, and the messages when files are missing. No network."""

from __future__ import annotations

import gzip
import hashlib
import io
import logging
import tarfile
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from recx.data import fetch
from recx.data.formats import get_reader
from recx.data.rawfiles import resolve_raw_files
from recx.errors import ChecksumError, ConfigError, DataFormatError, DataMissingError
from tests.conftest import compose
from tests.data import _fixtures as fx


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def zip_bytes(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
    return buf.getvalue()


RATINGS = b"userId,movieId,rating,timestamp\n1,1,4.0,964982703\n1,3,4.0,964981247\n"
MOVIES = b"movieId,title,genres\n1,Toy Story (1995),Animation\n3,Heat (1995),Action\n"


def ml_small(tmp_path, *overrides):
    """ml_latest_small pointed at a file:// zip built here, with the fixture's own hashes."""
    src = tmp_path / "mirror" / "ml-latest-small.zip"
    src.parent.mkdir(parents=True, exist_ok=True)
    src.write_bytes(zip_bytes({"ml-latest-small/ratings.csv": RATINGS,
                               "ml-latest-small/movies.csv": MOVIES,
                               "ml-latest-small/README.txt": b"readme"}))
    cfg = compose("preprocess", ["dataset=ml_latest_small", f"paths.root={tmp_path}",
                                 f"dataset.origin.url={src.as_uri()}", *overrides])
    cfg.dataset.origin.files = {"ml-latest-small/ratings.csv": sha(RATINGS),
                                "ml-latest-small/movies.csv": sha(MOVIES)}
    return cfg, src


# ------------------------------------------------------------------ downloads through configs
def test_zip_download_extracts_verifies_and_caches(tmp_path):
    cfg, src = ml_small(tmp_path)
    files = resolve_raw_files(cfg.dataset, cfg.paths)
    folder = tmp_path / "data" / "ml_latest_small"
    assert (folder / "ml-latest-small" / "ratings.csv").read_bytes() == RATINGS
    assert not (folder / "ml-latest-small" / "README.txt").exists()  # only what is used
    assert not list(folder.rglob("*.part"))
    assert "ml-latest-small.zip" in (folder / "download.json").read_text()
    raw = get_reader(cfg.dataset.reader)(cfg.dataset, files)
    assert len(raw.interactions) == 2 and raw.info["items_with_text_read"] == 2
    src.unlink()  # second run: served from the cache, no download
    again = resolve_raw_files(cfg.dataset, cfg.paths)
    assert again.path("ml-latest-small/ratings.csv") == files.path("ml-latest-small/ratings.csv")


def test_wrong_checksum_of_a_member_leaves_nothing_extracted(tmp_path):
    """The members are checked before any of them moves into place: the good movies.csv is not
    left behind either, and the archive is quarantined so the next run downloads it again."""
    cfg, _ = ml_small(tmp_path)
    cfg.dataset.origin.files = {"ml-latest-small/ratings.csv": "0" * 64,
                                "ml-latest-small/movies.csv": sha(MOVIES)}
    with pytest.raises(ChecksumError) as e:
        resolve_raw_files(cfg.dataset, cfg.paths)
    msg = str(e.value)
    assert "0" * 64 in msg and sha(RATINGS) in msg  # expected and actual
    folder = tmp_path / "data" / "ml_latest_small"
    assert not list(folder.rglob("*.csv")) and not list(folder.glob(".extracting*"))
    assert (folder / "ml-latest-small.zip.corrupt").exists()
    assert not (folder / "ml-latest-small.zip").exists()


def test_wrong_checksum_of_a_direct_download(tmp_path):
    mirror = fx.amazon2018(tmp_path / "mirror", cat="Gift_Cards")
    cfg = compose("preprocess", ["dataset=amazon_gift_cards_2018", f"paths.root={tmp_path}"])
    cfg.dataset.origin.urls = {n: (mirror / n).as_uri() for n in
                               ("Gift_Cards_5.json.gz", "meta_Gift_Cards.json.gz")}
    with pytest.raises(ChecksumError) as e:  # the pins are those of the real files
        resolve_raw_files(cfg.dataset, cfg.paths)
    assert "41e1f0e50d3c1c9d7d949fb6315944c8bde51ea6b7429a29fdd0d02cbc07ef25" in str(e.value)
    folder = tmp_path / "data" / "amazon_gift_cards_2018"
    assert not (folder / "Gift_Cards_5.json.gz").exists()
    assert (folder / "Gift_Cards_5.json.gz.corrupt").exists()
    assert not list(folder.glob("*.part"))


def test_cached_file_with_a_wrong_hash_is_downloaded_again(tmp_path):
    cfg, _ = ml_small(tmp_path)
    files = resolve_raw_files(cfg.dataset, cfg.paths)
    member = files.path("ml-latest-small/ratings.csv")
    member.write_bytes(RATINGS[:20])  # damaged on disk
    files = resolve_raw_files(cfg.dataset, cfg.paths)
    assert files.path("ml-latest-small/ratings.csv").read_bytes() == RATINGS


def test_download_false_names_url_and_expected_files(tmp_path):
    cfg = compose("preprocess", ["dataset=ml_latest_small", "dataset.download=false",
                                 f"paths.root={tmp_path}"])
    with pytest.raises(DataMissingError) as e:
        resolve_raw_files(cfg.dataset, cfg.paths)
    msg = str(e.value)
    assert "downloading is disabled" in msg
    assert "https://files.grouplens.org/datasets/movielens/ml-latest-small.zip" in msg
    assert "ml-latest-small/ratings.csv (sha256 80da8b33…)" in msg
    assert "ml-latest-small/movies.csv" in msg and "Looked in" in msg
    assert "dataset.raw_dir=" in msg and "dataset.download=true" in msg


def test_offline_forbids_the_download(tmp_path):
    cfg, _ = ml_small(tmp_path)
    with pytest.raises(DataMissingError, match=r"offline=true"):
        resolve_raw_files(cfg.dataset, cfg.paths, offline=True)
    assert not (tmp_path / "data" / "ml_latest_small").exists()


def test_manual_data_set_names_homepage_and_instructions(tmp_path):
    cfg = compose("preprocess", ["dataset=yelp", f"paths.root={tmp_path}"])
    with pytest.raises(DataMissingError) as e:
        resolve_raw_files(cfg.dataset, cfg.paths)
    msg = str(e.value)
    assert "by hand" in msg and "https://www.yelp.com/dataset" in msg
    assert "yelp_academic_dataset_review.json" in msg and "Instructions" in msg


def test_raw_dir_missing_file_lists_expected_files_and_url(tmp_path):
    folder = tmp_path / "raw"
    folder.mkdir()
    (folder / "ratings.csv").write_bytes(RATINGS)
    cfg = compose("preprocess", ["dataset=ml_latest_small", f"dataset.raw_dir={folder}",
                                 f"paths.root={tmp_path}"])
    with pytest.raises(DataMissingError) as e:
        resolve_raw_files(cfg.dataset, cfg.paths)
    msg = str(e.value)
    assert "Missing:" in msg and "ml-latest-small/movies.csv" in msg
    assert "ml-latest-small.zip" in msg and f"{folder}/ (dataset.raw_dir)" in msg


def test_raw_dir_checksum_mismatch_is_an_error(tmp_path):
    folder = fx.ml100k_atomic(tmp_path / "raw")  # not the pinned RecBole files
    cfg = compose("preprocess", ["dataset=ml_100k", f"dataset.raw_dir={folder}",
                                 f"paths.root={tmp_path}"])
    with pytest.raises(ChecksumError) as e:
        resolve_raw_files(cfg.dataset, cfg.paths)
    assert "4edb74e2a81178c2ba9ff381495f754f996c4aea351b1272ca36b43da0935eff" in str(e.value)
    assert (folder / "ml-100k.inter").exists()  # a user's raw_dir is never touched


def test_category_placeholders_and_per_category_folder(tmp_path):
    mirror = fx.amazon2018(tmp_path / "mirror", cat="Toys")
    cfg = compose("preprocess", ["dataset=amazon2018", "dataset.category=Toys",
                                 f"paths.root={tmp_path}"])
    cfg.dataset.origin.urls = {"{category}_5.json.gz": f"{mirror.as_uri()}/{{category}}_5.json.gz",
                               "meta_{category}.json.gz":
                               f"{mirror.as_uri()}/meta_{{category}}.json.gz"}
    files = resolve_raw_files(cfg.dataset, cfg.paths)
    assert files.folder == tmp_path / "data" / "amazon2018" / "Toys"
    raw = get_reader(cfg.dataset.reader)(cfg.dataset, files)
    assert len(raw.interactions) == len(fx.EVENTS) and raw.items is not None


def test_missing_category_is_a_config_error(tmp_path):
    cfg = compose("preprocess", ["dataset=amazon2018", f"paths.root={tmp_path}",
                                 "dataset.category=''"])
    with pytest.raises(ConfigError, match=r"dataset\.category"):
        resolve_raw_files(cfg.dataset, cfg.paths)


def test_unknown_layout(tmp_path):
    cfg = compose("preprocess", ["dataset=ml_100k", "dataset.layout=nope",
                                 f"dataset.raw_dir={tmp_path}", f"paths.root={tmp_path}"])
    with pytest.raises(ConfigError, match="no layout 'nope'"):
        resolve_raw_files(cfg.dataset, cfg.paths)


def test_official_layout_is_downloaded_when_the_default_cannot_be(tmp_path):
    mirror = tmp_path / "mirror" / "ml-100k.zip"
    mirror.parent.mkdir()
    src = fx.ml100k_official(tmp_path / "o") / "ml-100k"
    mirror.write_bytes(zip_bytes({f"ml-100k/{n}": (src / n).read_bytes()
                                  for n in ("u.data", "u.item", "u.genre")}))
    cfg = compose("preprocess", ["dataset=ml_100k", f"paths.root={tmp_path}"])
    cfg.dataset.layouts.official.origin.url = mirror.as_uri()
    cfg.dataset.layouts.official.origin.md5 = hashlib.md5(mirror.read_bytes()).hexdigest()
    files = resolve_raw_files(cfg.dataset, cfg.paths)
    assert files.layout == "official"
    raw = get_reader(cfg.dataset.reader)(cfg.dataset, files)
    assert len(raw.interactions) == 5 and "movie_title" in raw.items.columns


# ------------------------------------------------------------------ archives
def test_gzip_and_tar_archives(tmp_path):
    """The network leaf takes plain URLs, file names and pins."""
    data = b"hello\n" * 100
    gz = tmp_path / "m" / "x.csv.gz"
    gz.parent.mkdir()
    gz.write_bytes(gzip.compress(data))
    got = fetch.fetch_files(tmp_path / "out", url=gz.as_uri(), archive="gzip",
                            wanted=["x.csv"], pins={"x.csv": sha(data)})
    assert (tmp_path / "out" / "x.csv").read_bytes() == data
    assert got.paths == [tmp_path / "out" / "x.csv.gz"]
    assert got.verified == {tmp_path / "out" / "x.csv": sha(data)}
    tar = tmp_path / "m" / "a.tar.gz"
    with tarfile.open(tar, "w:gz") as t:
        info = tarfile.TarInfo("pkg/y.csv")
        info.size = len(data)
        t.addfile(info, io.BytesIO(data))
    fetch.fetch_files(tmp_path / "out2", url=tar.as_uri(), archive="tar",
                      wanted=["pkg/y.csv"], pins={"pkg/y.csv": sha(data)})
    assert (tmp_path / "out2" / "pkg" / "y.csv").read_bytes() == data


def test_corrupted_zip_archive(tmp_path):
    cfg, src = ml_small(tmp_path)
    src.write_bytes(b"PK\x03\x04 this is not a zip file at all")
    with pytest.raises(DataFormatError) as e:
        resolve_raw_files(cfg.dataset, cfg.paths)
    assert "corrupted or truncated zip archive" in str(e.value)
    assert (tmp_path / "data" / "ml_latest_small" / "ml-latest-small.zip.corrupt").exists()


# ------------------------------------------------------------------ corrupted gzip while reading
@pytest.mark.parametrize("damage", ["truncated", "not_gzip"])
def test_corrupted_gzip_names_the_file(tmp_path, damage):
    folder = fx.amazon2018(tmp_path / "raw", cat="Toys")
    path = folder / "Toys_5.json.gz"
    good = path.read_bytes()
    path.write_bytes(good[: len(good) // 2] if damage == "truncated" else b"not gzip data\n")
    cfg = compose("preprocess", ["dataset=amazon2018", "dataset.category=Toys",
                                 f"dataset.raw_dir={folder}", f"paths.root={tmp_path}"])
    files = resolve_raw_files(cfg.dataset, cfg.paths)
    with pytest.raises(DataFormatError) as e:
        get_reader(cfg.dataset.reader)(cfg.dataset, files)
    assert str(path) in str(e.value) and "corrupted or truncated gzip" in str(e.value)


# ------------------------------------------------------------------ HTTP: resume and partials
class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, payload: bytes, *, ranges: bool = True, cut: int | None = None):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.payload, self.ranges, self.cut = payload, ranges, cut
        self.seen: list[str | None] = []


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        srv: _Server = self.server
        rng = self.headers.get("Range")
        srv.seen.append(rng)
        data, start = srv.payload, 0
        if rng and srv.ranges:
            start = int(rng.split("=")[1].split("-")[0])
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        body = data[start:]
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if srv.cut is not None:  # the connection drops mid-transfer
            self.wfile.write(body[: max(0, srv.cut - start)])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def serve():
    servers = []

    def start(payload: bytes, **kw) -> tuple[_Server, str]:
        srv = _Server(payload, **kw)
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        servers.append(srv)
        return srv, f"http://127.0.0.1:{srv.server_address[1]}/file.bin"

    yield start
    for s in servers:
        s.shutdown()
        s.server_close()


PAYLOAD = bytes(range(256)) * 1200  # 307,200 bytes


def test_partial_download_resumes_with_range(tmp_path, serve):
    srv, url = serve(PAYLOAD)
    target = tmp_path / "file.bin"
    Path(str(target) + ".part").write_bytes(PAYLOAD[:100_000])
    got = fetch.fetch_url(url, target, sha256=sha(PAYLOAD), progress=False)
    assert got == sha(PAYLOAD) and target.read_bytes() == PAYLOAD
    assert srv.seen == ["bytes=100000-"]
    assert not Path(str(target) + ".part").exists()


def test_server_without_range_restarts_from_zero(tmp_path, serve):
    srv, url = serve(PAYLOAD, ranges=False)
    target = tmp_path / "file.bin"
    Path(str(target) + ".part").write_bytes(b"x" * 50_000)  # stale and wrong
    fetch.fetch_url(url, target, sha256=sha(PAYLOAD), progress=False)
    assert target.read_bytes() == PAYLOAD and srv.seen == ["bytes=50000-"]


def test_interrupted_download_never_looks_complete(tmp_path, serve):
    srv, url = serve(PAYLOAD, cut=120_000)
    target = tmp_path / "file.bin"
    with pytest.raises(DataMissingError, match="interrupted") as e:
        fetch.fetch_url(url, target, sha256=sha(PAYLOAD), progress=False)
    assert "run the same command again to resume" in str(e.value)
    part = Path(str(target) + ".part")
    assert not target.exists() and part.stat().st_size == 120_000
    srv.cut = None  # the network is back: the next run resumes
    fetch.fetch_url(url, target, sha256=sha(PAYLOAD), progress=False)
    assert target.read_bytes() == PAYLOAD and srv.seen[-1] == "bytes=120000-"


def test_resumed_bytes_that_are_wrong_give_a_checksum_error(tmp_path, serve):
    _, url = serve(PAYLOAD)
    target = tmp_path / "file.bin"
    Path(str(target) + ".part").write_bytes(b"\0" * 1000)  # not the file's first bytes
    with pytest.raises(ChecksumError) as e:
        fetch.fetch_url(url, target, sha256=sha(PAYLOAD), progress=False)
    assert sha(PAYLOAD) in str(e.value) and "actual" in str(e.value)
    assert not target.exists() and Path(str(target) + ".corrupt").exists()


def test_file_url_resume_and_progress_log_lines(tmp_path, monkeypatch, caplog):
    src = tmp_path / "src.bin"
    src.write_bytes(PAYLOAD)
    target = tmp_path / "out.bin"
    Path(str(target) + ".part").write_bytes(PAYLOAD[:7_000])
    monkeypatch.setattr(fetch, "CHUNK", 4096)
    with caplog.at_level(logging.INFO, logger="recx.data.fetch"):
        fetch.fetch_url(src.as_uri(), target, sha256=sha(PAYLOAD), progress=False)
    assert target.read_bytes() == PAYLOAD
    pct = [r.getMessage() for r in caplog.records if "%" in r.getMessage()]
    assert [m.split(": ")[1].split("%")[0] for m in pct] == [str(p) for p in range(10, 101, 10)]
