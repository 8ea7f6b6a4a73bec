"""The tus pieces without a server: header parsing, the on-disk store (offset truth, lock, expiry and
`flask tus prune`), and uploads.add_video_file (the one home of the video rules for a file on disk)."""

from __future__ import annotations

import base64
import io
import json
import os
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from app.core import storage
from app.core.errors import Conflict, UserError
from app.core.time import utcnow
from app.extensions import db
from app.intake import uploads
from app.models import Attachment, AuditEvent, User
from app.tus import operations, protocol, store
from tests.tus_fixtures import VIDEO_LIMIT, file_sha256, mp4, nomination, sha256, tus_app, tus_files, world  # noqa: F401


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


# --- protocol -----------------------------------------------------------------------------------------


def test_metadata_pairs_are_decoded():
    header = f"filename {_b64('科普 活动,视频.mp4')},nomination_id {_b64('12')},is_confidential"
    assert protocol.metadata(header) == {"filename": "科普 活动,视频.mp4", "nomination_id": "12",
                                         "is_confidential": ""}
    assert protocol.metadata(None) == {} == protocol.metadata("")


@pytest.mark.parametrize("header", ["filename !!!", f"a {_b64('x')} extra", f"a {_b64('x')},a {_b64('y')}",
                                    "a  b", "name " + base64.b64encode(b"\xff\xfe").decode()])
def test_bad_metadata_is_400(header):
    with pytest.raises(UserError) as e:
        protocol.metadata(header)
    assert e.value.status == 400


@pytest.mark.parametrize("value", [None, "", "-1", "+1", "1.0", "²", "１２", "1 2", "9" * 19])
def test_offsets_and_lengths_are_plain_decimals(value):
    with pytest.raises(UserError) as e:
        protocol.non_negative(value, "Upload-Offset")
    assert e.value.status == 400


def test_checksum_header():
    hasher, expected = protocol.checksum("sha1 " + base64.b64encode(b"\x01" * 20).decode())
    assert expected == b"\x01" * 20 and hasher.name == "sha1"
    assert protocol.checksum(None) is None
    for bad in ("md5 AAAA", "sha1", "sha1 !!!"):
        with pytest.raises(UserError):
            protocol.checksum(bad)


# --- the store ----------------------------------------------------------------------------------------


def test_append_writes_at_the_offset_and_the_json_is_the_truth(tus_app):  # noqa: F811
    with tus_app.test_request_context():
        upload = store.create(10, owner_id=1, nomination_id=1, filename="v.mp4")
        with store.holding(upload.id) as (held, fh):
            store.append(held, fh, io.BytesIO(b"abcd"))
        assert store.load(upload.id).offset == 4
        # Bytes beyond the saved offset (a crash between write and save) are cut off by the next append.
        with open(store.part_path(upload), "ab") as fh:
            fh.write(b"garbage")
        with store.holding(upload.id) as (held, fh):
            store.append(held, fh, io.BytesIO(b"efghij"))
        with open(store.part_path(upload), "rb") as fh:
            assert fh.read() == b"abcdefghij"
        assert store.load(upload.id).complete


def test_a_held_upload_is_busy_for_everyone_else(tus_app):  # noqa: F811
    with tus_app.test_request_context():
        upload = store.create(10, owner_id=1, nomination_id=1, filename="v.mp4")
        with store.holding(upload.id):
            with pytest.raises(store.Busy):
                with store.holding(upload.id, wait=0.05):
                    pass
        with store.holding(upload.id, wait=0):
            pass
        store.remove(upload.id)
        with pytest.raises(store.Gone):
            with store.holding(upload.id):
                pass
        with pytest.raises(store.Gone):
            with store.holding("../../etc/passwd"):
                pass


def _age(upload_id: str, hours: float) -> None:
    path = os.path.join(store.folder(), upload_id + ".json")
    with open(path, encoding="utf-8") as fh:
        data = json.load(fh)
    data["updated"] = (utcnow() - timedelta(hours=hours)).isoformat()
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(data, fh)
    old = (utcnow() - timedelta(hours=hours)).timestamp()
    for ext in (".json", ".part"):
        os.utime(os.path.join(store.folder(), upload_id + ext), (old, old))


def test_prune_removes_idle_uploads_and_strays_but_not_fresh_or_busy_ones(tus_app):  # noqa: F811
    with tus_app.test_request_context():
        fresh = store.create(10, 1, 1, "a.mp4")
        idle = store.create(10, 1, 1, "b.mp4")
        busy = store.create(10, 1, 1, "c.mp4")
        _age(idle.id, 25)
        _age(busy.id, 25)
        stray = os.path.join(store.folder(), "0" * 32 + ".part")  # its .json never made it
        with open(stray, "wb"):
            pass
        old = (utcnow() - timedelta(hours=30)).timestamp()
        os.utime(stray, (old, old))
        assert store.load(idle.id) is None  # expired uploads are gone for the protocol at once
        with open(store.part_path(busy), "r+b") as fh:
            import fcntl

            fcntl.flock(fh.fileno(), fcntl.LOCK_EX)  # a PATCH is writing it right now
            assert store.prune() == 1
        assert sorted(tus_files(tus_app)) == sorted([f"{fresh.id}.json", f"{fresh.id}.part",
                                                     f"{busy.id}.json", f"{busy.id}.part"])
        assert store.prune() == 1
        assert sorted(tus_files(tus_app)) == [f"{fresh.id}.json", f"{fresh.id}.part"]


def test_flask_tus_prune(tus_app):  # noqa: F811
    with tus_app.test_request_context():
        idle = store.create(10, 1, 1, "b.mp4")
        _age(idle.id, 48)
    result = tus_app.test_cli_runner().invoke(args=["tus", "prune"])
    assert result.exit_code == 0, result.output
    assert "已删除 1 个" in result.output
    assert tus_files(tus_app) == []


def test_a_new_upload_replaces_the_same_users_unfinished_one_for_that_nomination(tus_app, world):  # noqa: F811
    with tus_app.test_request_context():
        a = db.session.scalar(select(User).where(User.username == "unit_a"))
        a2 = db.session.scalar(select(User).where(User.username == "unit_a2"))
        first = operations.start(a, world.nom_a, 100, "v.mp4")
        other_user = operations.start(a2, world.nom_a, 100, "v.mp4")
        second = operations.start(a, world.nom_a, 100, "v.mp4")
        assert store.load(first.id) is None
        assert store.load(other_user.id) is not None and store.load(second.id) is not None
        with pytest.raises(UserError) as e:
            operations.owned(a, other_user.id)
        assert e.value.status == 404


# --- add_video_file -----------------------------------------------------------------------------------


def _on_disk(tmp_path, data: bytes, name: str = "in.part") -> str:
    path = tmp_path / name
    path.write_bytes(data)
    return str(path)


def _videos(nomination_id: int) -> list[Attachment]:
    db.session.expire_all()
    return list(db.session.scalars(select(Attachment).where(Attachment.nomination_id == nomination_id,
                                                            Attachment.kind == "video")))


def test_add_video_file_replaces_the_video_in_one_operation(tus_app, world, tmp_path):  # noqa: F811
    with tus_app.test_request_context():
        old = uploads.add_video_file(world.nom_a, _on_disk(tmp_path, mp4(1000, b"o")), "旧.mp4")
        old_file = storage.path_of(old.stored_name)
        source = _on_disk(tmp_path, mp4(2000, b"n"), "new.part")
        new = uploads.add_video_file(world.nom_a, source, "新.mp4")
        videos = _videos(world.nom_a)
        assert [v.id for v in videos] == [new.id]
        assert file_sha256(storage.path_of(new.stored_name)) == sha256(mp4(2000, b"n"))
        assert not os.path.exists(old_file)
        assert os.path.exists(source)  # the caller's file is the caller's to remove
        assert new.original_name == "新.mp4" and new.mime == "video/mp4"


@pytest.mark.parametrize("data", [b"not a video" * 10, mp4(1000)[:-10], b"", mp4(VIDEO_LIMIT)])
def test_add_video_file_refuses_and_keeps_the_old_video(tus_app, world, tmp_path, data):  # noqa: F811
    with tus_app.test_request_context():
        old = uploads.add_video_file(world.nom_a, _on_disk(tmp_path, mp4(1000)), "旧.mp4")
        files = sorted(os.listdir(storage.upload_dir()))
        events = db.session.scalar(select(func.count()).select_from(AuditEvent))
        with pytest.raises(UserError) as e:
            uploads.add_video_file(world.nom_a, _on_disk(tmp_path, data, "bad.part"), "坏.mp4")
        assert e.value.field_errors.get("video")
        assert [v.id for v in _videos(world.nom_a)] == [old.id]
        assert sorted(os.listdir(storage.upload_dir())) == files
        assert db.session.scalar(select(func.count()).select_from(AuditEvent)) == events


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_a_guard_refusing_under_the_lock_rolls_everything_back(tus_app, world, tmp_path):  # noqa: F811
    with tus_app.test_request_context():
        old = uploads.add_video_file(world.nom_a, _on_disk(tmp_path, mp4(1000)), "旧.mp4")
        files = sorted(os.listdir(storage.upload_dir()))

        def guard(nom):
            raise Conflict("该推荐材料已提交，正在等待受理，不能修改；如需修改请先撤回。")

        with pytest.raises(Conflict):
            uploads.add_video_file(world.nom_a, _on_disk(tmp_path, mp4(3000), "n.part"), "新.mp4", guard=guard)
        assert [v.id for v in _videos(world.nom_a)] == [old.id]
        assert os.path.exists(storage.path_of(old.stored_name))
        assert sorted(os.listdir(storage.upload_dir())) == files


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_the_finished_upload_of_a_nomination_submitted_meanwhile_is_refused(tus_app, world):  # noqa: F811
    with tus_app.test_request_context():
        a = db.session.scalar(select(User).where(User.username == "unit_a"))
        data = mp4(5000)
        upload = operations.start(a, world.nom_a, len(data), "v.mp4")
        nomination(tus_app, world.nom_a).status = "submitted"
        db.session.commit()
        with pytest.raises(Conflict):
            operations.append(a, upload.id, 0, io.BytesIO(data))
        assert _videos(world.nom_a) == []
        assert tus_files(tus_app) == []
