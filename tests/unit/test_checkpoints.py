"""The journal's end is anchored: a signed checkpoint (or `--expect SEQ:HASH`) fails a
journal that is shorter than it or differs at its seq, and the relay refuses a journal
topic whose tail is not the store's record of that seq."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from app.cli import main
from consumers.checkpoint_writer import CheckpointWriter
from consumers.journal_relay import Tail, TopicDiverged, check_journal_tail, check_rejects_tail
from ledger import checkpoints
from ledger.store import LedgerStore
from tests.ledger_scenario import Scenario
from tests.signing_keys import write_keys


def _ledger_file(path: Path, deposits: int, amount: str = "100") -> str:
    """A store with an account and `deposits` deposits; its URL."""
    url = f"sqlite:///{path}"
    s = Scenario(url)
    s.open("C1")
    for _ in range(deposits):
        s.deposit("C1", "USD", amount)
    s.store.close()
    return url


@pytest.fixture
def signed(tmp_path: Path) -> tuple[str, Path, Path]:
    """A ledger of 5 deposits, its signed checkpoint file and the public key."""
    url = _ledger_file(tmp_path / "ledger.db", 5)
    private, public = write_keys(tmp_path)
    checkpoint = tmp_path / "checkpoint.json"
    assert main(["--store", url, "journal", "checkpoint", "--key", str(private),
                 "--out", str(checkpoint)]) == 0  # fmt: skip
    return url, checkpoint, public


def _verify(*args: str) -> int:
    return main(["audit", "verify", *args])


def test_the_journal_the_checkpoint_was_taken_of_verifies(
    signed: tuple[str, Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    url, checkpoint, public = signed
    assert (
        _verify("--checkpoint", str(checkpoint), "--public-key", str(public), "--store", url) == 0
    )
    assert "1 anchor holds" in capsys.readouterr().out  # changed: was "1 anchors hold"


def test_a_journal_missing_its_last_records_fails_the_checkpoint(
    signed: tuple[str, Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url, checkpoint, public = signed
    with LedgerStore.open(url) as store:
        records = [entry.record for entry in store.iter_journal()]
    shortened = tmp_path / "shortened.jsonl"
    shortened.write_bytes(b"\n".join(records[:-2]) + b"\n")  # its chain still verifies
    assert _verify("--file", str(shortened)) == 0
    assert _verify("--file", str(shortened), "--checkpoint", str(checkpoint),
                   "--public-key", str(public)) == 1  # fmt: skip
    assert "records were dropped from its end" in capsys.readouterr().out


def test_a_journal_rewritten_with_recomputed_hashes_fails_the_checkpoint(
    signed: tuple[str, Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, checkpoint, public = signed
    # Another history with valid hashes throughout, as long as the signed one or longer.
    rewritten = _ledger_file(tmp_path / "rewritten.db", 7, amount="999")
    assert _verify("--store", rewritten) == 0
    assert _verify("--store", rewritten, "--checkpoint", str(checkpoint),
                   "--public-key", str(public)) == 1  # fmt: skip
    assert "the journal was rewritten" in capsys.readouterr().out


def test_expect_names_the_seq_and_hash_that_must_hold(
    signed: tuple[str, Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    url, checkpoint, _ = signed
    written = json.loads(checkpoint.read_bytes())
    assert _verify("--store", url, "--expect", f"{written['seq']}:{written['hash']}") == 0
    assert _verify("--store", url, "--expect", f"{written['seq'] + 1}:{written['hash']}") == 1
    assert _verify("--store", url, "--expect", f"2:{written['hash']}") == 1
    capsys.readouterr()
    assert _verify("--store", url, "--expect", "2:not-a-hash") == 2
    assert "write SEQ:HASH" in capsys.readouterr().err


def test_a_forged_or_unsigned_checkpoint_is_refused(
    signed: tuple[str, Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url, checkpoint, public = signed
    forged = tmp_path / "forged.json"
    document = json.loads(checkpoint.read_bytes())
    forged.write_text(json.dumps({**document, "seq": document["seq"] - 1}))
    assert _verify("--store", url, "--checkpoint", str(forged), "--public-key", str(public)) == 2
    assert "the signature does not verify" in capsys.readouterr().err
    assert _verify("--store", url, "--checkpoint", str(checkpoint)) == 2
    assert "--checkpoint needs --public-key" in capsys.readouterr().err


def test_the_relay_accepts_a_tail_identical_to_the_store_and_refuses_any_other(
    tmp_path: Path,
) -> None:
    with LedgerStore.open(_ledger_file(tmp_path / "ledger.db", 3)) as store:
        last = store.last_seq()
        (entry,) = store.read_journal(last - 1, 1)
        check_journal_tail(store, Tail(last, entry.record))  # the genuine tail: no alarm
        forged = entry.record.replace(b'"C1"', b'"C2"')
        with pytest.raises(TopicDiverged, match="differs from the store's"):
            check_journal_tail(store, Tail(last, forged))
        with pytest.raises(TopicDiverged, match="which the store does not hold"):
            check_journal_tail(store, Tail(last + 1, entry.record))


def test_the_rejects_relay_accepts_a_tail_identical_to_the_store_and_refuses_any_other(
    tmp_path: Path,
) -> None:
    s = Scenario(f"sqlite:///{tmp_path / 'ledger.db'}")
    s.open("C1")
    s.send("withdrawal", account_id="C1", event_id="w1")  # no such type: two rejects
    s.send("withdrawal", account_id="C1", event_id="w2")
    with s.store as store:
        assert store.reject_count() == 2
        (genuine,) = store.read_rejects(1, 1)
        check_rejects_tail(store, Tail(2, genuine))  # the genuine tail: no alarm
        with pytest.raises(TopicDiverged, match="rejects topic's record of number 2 differs"):
            check_rejects_tail(store, Tail(2, genuine.replace(b'"w2"', b'"w9"')))
        with pytest.raises(TopicDiverged, match="ends at number 3, which the store does not"):
            check_rejects_tail(store, Tail(3, genuine))
        (first,) = store.read_rejects(0, 1)
        with pytest.raises(TopicDiverged, match="record of number 2 differs"):
            check_rejects_tail(store, Tail(2, first))  # the right bytes under another number


def _write_checkpoint(store: LedgerStore, key: Ed25519PrivateKey) -> CheckpointWriter:
    """The writer's last act when the service stops: a checkpoint of the journal's end."""
    writer = CheckpointWriter(store, key, 60.0, asyncio.Event())
    writer.resume()

    async def stop_at_once() -> None:
        stopping = asyncio.Event()
        stopping.set()
        await writer.run(stopping)

    asyncio.run(stop_at_once())
    return writer


def test_the_service_checkpoints_the_journal_end_when_it_moved_and_audit_verify_uses_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    private, public = write_keys(tmp_path)
    key = checkpoints.load_private_key(private)
    s = Scenario(f"sqlite:///{tmp_path / 'ledger.db'}")
    s.open("C1")
    s.deposit("C1", "USD", "100")
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    with LedgerStore.open(url) as store:
        assert _write_checkpoint(store, key).count == 1
        assert _write_checkpoint(store, key).count == 1  # the journal did not move: none
        s.deposit("C1", "USD", "5")
        assert _write_checkpoint(store, key).count == 2
        documents = store.read_checkpoints()
        ends = [entry.seq for entry in store.iter_journal()]
    assert [checkpoints.checkpoint_position(d)[0] for d in documents] == [ends[-2], ends[-1]]
    s.store.close()
    verify = ["--signed-checkpoints", "store", "--public-key", str(public)]
    assert _verify("--store", url, *verify) == 0
    assert "2 anchors hold" in capsys.readouterr().out
    with LedgerStore.open(url) as store:
        records = [entry.record for entry in store.iter_journal()]
    shortened = tmp_path / "shortened.jsonl"
    shortened.write_bytes(b"\n".join(records[:-1]) + b"\n")
    assert _verify("--file", str(shortened), "--store", url, *verify) == 1
    assert "the store checkpoint 2 vouches for seq" in capsys.readouterr().out


def test_signed_checkpoints_that_are_missing_or_signed_by_another_key_fail(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = _ledger_file(tmp_path / "ledger.db", 2)
    _, public = write_keys(tmp_path)
    verify = ["--store", url, "--signed-checkpoints", "store", "--public-key", str(public)]
    assert _verify(*verify) == 1
    assert "the store holds no signed checkpoint" in capsys.readouterr().err
    with LedgerStore.open(url) as store:
        _write_checkpoint(store, Ed25519PrivateKey.generate())
    assert _verify(*verify) == 2
    assert "the store checkpoint 1: the signature does not verify" in capsys.readouterr().err
    assert _verify("--store", url, "--signed-checkpoints", "store") == 2
    assert "--signed-checkpoints needs --public-key" in capsys.readouterr().err


def test_after_a_key_rotation_each_key_in_use_verifies_its_own_checkpoints(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    url = _ledger_file(tmp_path / "ledger.db", 2)
    (tmp_path / "old").mkdir()
    (tmp_path / "new").mkdir()
    old_private, old_public = write_keys(tmp_path / "old")
    new_private, new_public = write_keys(tmp_path / "new")
    with LedgerStore.open(url) as store:
        _write_checkpoint(store, checkpoints.load_private_key(old_private))
    s = Scenario(url)
    s.counter = 100  # past the event ids and offsets the first two deposits took
    s.deposit("C1", "USD", "100")
    s.store.close()
    with LedgerStore.open(url) as store:
        _write_checkpoint(store, checkpoints.load_private_key(new_private))
        assert store.checkpoint_count() == 2
    store_checkpoints = ["--store", url, "--signed-checkpoints", "store"]
    assert _verify(*store_checkpoints, "--public-key", str(new_public)) == 2
    refused = capsys.readouterr().err
    assert "the store checkpoint 1: the signature does not verify with the public key given" in (
        refused
    )
    both = ["--public-key", str(old_public), "--public-key", str(new_public)]
    assert _verify(*store_checkpoints, *both) == 0
    assert "2 anchors hold" in capsys.readouterr().out
    monkeypatch.setenv("LEDGER_CHECKPOINT_PUBLIC_KEY", f"{old_public}:{new_public}")
    assert _verify(*store_checkpoints) == 0
    assert "2 anchors hold" in capsys.readouterr().out
    stranger = tmp_path / "stranger"
    stranger.mkdir()
    _, stranger_public = write_keys(stranger)
    assert _verify(*store_checkpoints, "--public-key", str(stranger_public),
                   "--public-key", str(new_public)) == 2  # fmt: skip
    assert "checkpoint 1: the signature does not verify with none of the public keys" in (
        capsys.readouterr().err
    )


def test_a_checkpoint_file_may_hold_many_checkpoints_one_per_line(
    signed: tuple[str, Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url, checkpoint, public = signed
    many = tmp_path / "many.jsonl"
    many.write_bytes(checkpoint.read_bytes() * 3)
    assert _verify("--store", url, "--checkpoint", str(many), "--public-key", str(public)) == 0
    assert "3 anchors hold" in capsys.readouterr().out


def test_a_key_file_that_cannot_be_read_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = _ledger_file(tmp_path / "ledger.db", 1)
    missing = str(tmp_path / "missing.pem")
    assert _verify("--store", url, "--signed-checkpoints", "store", "--public-key", missing) == 2
    assert f"key file {missing} cannot be read" in capsys.readouterr().err
    assert main(["--store", url, "journal", "checkpoint", "--key", missing]) == 2
    assert f"key file {missing} cannot be read" in capsys.readouterr().err


def test_a_checkpoint_to_dash_goes_to_stdout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`--out -` wrote a file named `-`; it is stdout, as for journal export and report."""
    url = _ledger_file(tmp_path / "ledger.db", 2)
    private, _ = write_keys(tmp_path)
    monkeypatch.chdir(tmp_path)
    command = ["--store", url, "journal", "checkpoint", "--key", str(private), "--out", "-"]
    assert main(command) == 0
    assert '"seq":4' in capsys.readouterr().out  # the policy, the account, 2 deposits
    assert not (tmp_path / "-").exists()
