"""Record paths of the form FILE::MEMBER (a slice of a volume): the file behind them and their cache key."""

from __future__ import annotations

from pathlib import Path

from tlcore.data.digests import content_key, file_digest
from tlcore.specs import Record, source_file


def test_member_addresses_hash_the_file_and_the_member(tmp_path: Path) -> None:
    volume = tmp_path / "scan.nii.gz"
    volume.write_bytes(b"voxels")
    a, b = f"{volume}::3", f"{volume}::4"
    assert source_file(a) == str(volume)
    assert source_file(str(volume)) == str(volume)
    assert file_digest(a) != file_digest(b)  # two slices of one volume
    assert file_digest(a) == file_digest(f"{volume}::3")
    before = content_key([Record(a, 0)])
    volume.write_bytes(b"other voxels")  # an edited volume invalidates its slices' cached features
    assert content_key([Record(a, 0)]) != before


def test_a_real_file_with_the_separator_in_its_name_is_itself(tmp_path: Path) -> None:
    odd = tmp_path / "a::b.png"
    odd.write_bytes(b"png")
    assert source_file(str(odd)) == str(odd)
    assert file_digest(str(odd)) == file_digest(str(odd))
