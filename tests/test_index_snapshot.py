"""The customer index's snapshot on disk (core/index_snapshot.py): private, versioned,
per directory, bounded; another directory's or format's file ignored, a corrupt one
removed with one sentence in the log."""

from __future__ import annotations

import dataclasses
import gzip
import json
import logging
import os
import stat

import pytest

from core.customer_index import CustomerIndex
from core.index_keeper import customer_index_keeper
from core.index_snapshot import FORMAT, KEEP, Snapshot

pytestmark = pytest.mark.asyncio(loop_scope="session")


@pytest.fixture
async def index(demo_directory) -> CustomerIndex:
    loaded = CustomerIndex()
    await loaded.load(demo_directory)
    return loaded


def other_directory(config):
    return dataclasses.replace(config, directory=dataclasses.replace(config.directory, base_dn="DC=other,DC=net"))


def records(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "tenantry.index"]


async def test_a_snapshot_restores_every_customer_with_its_point_and_age(demo_directory, index, tmp_path):
    snapshot = Snapshot.of(demo_directory.config, tmp_path)
    snapshot.save(index)
    mode = stat.S_IMODE(os.stat(snapshot.path).st_mode)
    assert mode == 0o600 and stat.S_IMODE(os.stat(snapshot.path.parent).st_mode) == 0o700
    again = CustomerIndex()
    assert snapshot.restore(again, demo_directory.layout.with_tenant)
    assert again.customers == index.customers and [c.guid for c in again.customers] == [c.guid for c in index.customers]
    assert again.point == index.point and again.read_at == index.read_at and again.complete


async def test_a_snapshot_of_another_directory_or_format_is_ignored(demo_directory, index, tmp_path, caplog):
    caplog.set_level(logging.INFO, "tenantry.index")
    ours = Snapshot.of(demo_directory.config, tmp_path)
    theirs = Snapshot.of(other_directory(demo_directory.config), tmp_path)
    assert theirs.path != ours.path
    theirs.save(index)
    os.replace(theirs.path, ours.path)  # another directory's file under our name
    fresh = CustomerIndex()
    assert not ours.restore(fresh) and len(fresh) == 0
    ours.save(index)
    data = json.loads(gzip.decompress(ours.path.read_bytes()))
    ours.path.write_bytes(gzip.compress(json.dumps({**data, "format": FORMAT - 1}).encode()))
    assert not ours.restore(fresh) and len(fresh) == 0
    assert ours.path.exists()  # ignored, not removed: the next save replaces it
    assert records(caplog) == [
        f"The customer snapshot {ours.path} belongs to another directory; it is ignored.",
        f"The customer snapshot {ours.path} is of another format; it is ignored.",
    ]


@pytest.mark.parametrize("content", [b"not gzip at all", gzip.compress(b"{\"format\": 1, \"directory\""), gzip.compress(b"[1, 2]"), b""])
async def test_a_corrupt_snapshot_is_removed_with_one_sentence(demo_directory, tmp_path, caplog, content):
    snapshot = Snapshot.of(demo_directory.config, tmp_path)
    snapshot.path.parent.mkdir(parents=True)
    snapshot.path.write_bytes(content)
    fresh = CustomerIndex()
    assert not snapshot.restore(fresh) and len(fresh) == 0
    assert not snapshot.path.exists()
    [sentence] = records(caplog)
    assert sentence.startswith(f"The customer snapshot {snapshot.path} is unreadable (")
    assert sentence.endswith("); it is removed and will be written anew.") and "\n" not in sentence


async def test_a_row_of_the_wrong_shape_is_corruption(demo_directory, index, tmp_path, caplog):
    snapshot = Snapshot.of(demo_directory.config, tmp_path)
    snapshot.save(index)
    data = json.loads(gzip.decompress(snapshot.path.read_bytes()))
    data["customers"][3] = [None, None]
    snapshot.path.write_bytes(gzip.compress(json.dumps(data).encode()))
    assert not snapshot.restore(CustomerIndex()) and not snapshot.path.exists()
    assert len(records(caplog)) == 1


async def test_only_the_newest_snapshots_are_kept(demo_directory, index, tmp_path):
    paths = []
    for number in range(KEEP + 3):
        config = other_directory(demo_directory.config)
        config = dataclasses.replace(config, directory=dataclasses.replace(config.directory, base_dn=f"DC=d{number},DC=net"))
        snapshot = Snapshot.of(config, tmp_path)
        snapshot.save(index)
        os.utime(snapshot.path, (1_000_000 + number, 1_000_000 + number))
        paths.append(snapshot.path)
    Snapshot.of(demo_directory.config, tmp_path).save(index)
    kept = sorted((tmp_path / "index").iterdir())
    assert len(kept) == KEEP and not any(p.exists() for p in paths[:4])
    assert not list((tmp_path / "index").glob("*.tmp"))


async def test_the_console_starts_from_the_snapshot_marked_with_its_age(demo_directory, index, tmp_path):
    snapshot = Snapshot.of(demo_directory.config, tmp_path)
    index.read_at -= 3 * 3600
    snapshot.save(index)
    keeper = customer_index_keeper(demo_directory.config, demo_directory.config.console, tmp_path)
    assert keeper.index.complete and len(keeper.index) == len(index)
    from screens.index_status import index_status

    assert index_status(keeper).plain == " · 3 h old, refreshing…"
    await keeper.refresh(demo_directory)  # the demo's GUIDs differ: a full reload, then fresh
    assert index_status(keeper).plain == "" and keeper.index.read_at > index.read_at
