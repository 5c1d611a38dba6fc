"""History as append-only records on the OSS mount: what a reader sees, and what stays on disk."""

import json

from shared.reply.oss.blobs import MountBlobs
from shared.reply.oss.history import COMPACT_SLACK, HistoryStore, conversation_key


def store(tmp_path):
    return HistoryStore(MountBlobs(tmp_path / "dingbot"))


def files(history, key):
    return sorted(p.name for p in (history.blobs.root / history.folder(key)).iterdir())


def test_turns_are_kept_per_conversation(tmp_path):
    history = store(tmp_path)
    history.add_turn("cid-a", "m1", 1000, "问A", "答A")
    history.add_turn("cid-b", "m2", 1001, "问B", "答B")
    assert history.load("cid-a", 5).messages(5) == [{"role": "user", "content": "问A"},
                                                     {"role": "assistant", "content": "答A"}]
    assert [t["question"] for t in history.load("cid-b", 5).turns] == ["问B"]


def test_turns_are_read_in_the_order_they_were_asked_not_written(tmp_path):
    history = store(tmp_path)
    history.add_turn("cid", "m2", 2000, "second", "a")
    history.add_turn("cid", "m1", 1000, "first", "a")
    assert [t["question"] for t in history.load("cid", 5).turns] == ["first", "second"]


def test_only_the_last_history_length_turns_are_read(tmp_path):
    history = store(tmp_path)
    for i in range(8):
        history.add_turn("cid", f"m{i}", 1000 + i, f"q{i}", f"a{i}")
    conversation = history.load("cid", 3)
    assert [t["question"] for t in conversation.turns] == ["q5", "q6", "q7"]
    assert conversation.turn_records == 8


def test_compaction_deletes_what_no_reader_needs_and_keeps_what_one_does(tmp_path):
    history = store(tmp_path)
    for i in range(3 + COMPACT_SLACK + 2):
        history.add_turn("cid", f"m{i}", 1000 + i, f"q{i}", "a")
    history.set_persona("cid", "p1", 1001, "旧人设")
    history.set_persona("cid", "p2", 1002, "新人设")
    assert history.needs_compaction(history.load("cid", 3), keep=3)
    history.compact("cid", keep=3)
    conversation = history.load("cid", 3)
    assert [t["question"] for t in conversation.turns] == ["q12", "q13", "q14"]
    assert conversation.persona == "新人设"
    assert len(files(history, "cid")) == 3 + 1


def test_clear_hides_earlier_turns_keeps_the_persona_and_later_turns_count(tmp_path):
    history = store(tmp_path)
    history.set_persona("cid", "p", 900, "猫")
    history.add_turn("cid", "m1", 1000, "before", "a")
    history.add_clear("cid", "c", 1500)
    history.add_turn("cid", "m2", 2000, "after", "a")
    conversation = history.load("cid", 5)
    assert [t["question"] for t in conversation.turns] == ["after"] and conversation.persona == "猫"
    history.compact("cid", keep=5)
    assert not any("before" in (history.blobs.root / history.folder("cid") / f).read_text("utf-8")
                   for f in files(history, "cid"))


def test_persona_reset_returns_to_the_default(tmp_path):
    history = store(tmp_path)
    history.set_persona("cid", "p1", 1000, "海盗")
    history.set_persona("cid", "p2", 2000, None)
    assert history.load("cid", 5).persona is None


def test_records_are_readable_json_named_by_time_and_hash(tmp_path):
    history = store(tmp_path)
    history.add_turn("cid", "msg+/=1", 1_700_000_000_000, "问题", "回答")
    [name] = files(history, "cid")
    assert name.startswith("1700000000000-turn-") and name.endswith(".json") and "+" not in name
    record = json.loads((history.blobs.root / history.folder("cid") / name).read_text("utf-8"))
    assert record == {"kind": "turn", "msgId": "msg+/=1", "at": 1_700_000_000_000, "question": "问题",
                      "answer": "回答"}


def test_writing_the_same_event_twice_leaves_one_record(tmp_path):
    history = store(tmp_path)
    history.add_clear("cid", "c1", 1000)
    history.add_clear("cid", "c1", 1000)
    assert len(files(history, "cid")) == 1


def test_hostile_ids_cannot_escape_the_mount(tmp_path):
    history = store(tmp_path / "mount")
    for key in ("../../etc/passwd", "/abs/path", "a/../../b", "..", "名字/带斜杠", "\x00"):
        history.add_turn(key, key, 1, "q", "a")
        assert history.load(key, 1).turns == [{"question": "q", "answer": "a"}]
    assert [p.name for p in (tmp_path / "mount").iterdir()] == ["dingbot"]
    assert not (tmp_path / "etc").exists()


def test_half_written_and_foreign_files_are_ignored(tmp_path):
    history = store(tmp_path)
    history.add_turn("cid", "m1", 1000, "q", "a")
    folder = history.blobs.root / history.folder("cid")
    (folder / "0000000002000-turn-halfwritten.json").write_text("{\"question\": \"q", "utf-8")
    (folder / "notes.txt").write_text("hello", "utf-8")
    (folder / "0000000003000-turn-notadict.json").write_text("[1, 2]", "utf-8")
    assert history.load("cid", 5).turns == [{"question": "q", "answer": "a"}]


def test_the_previous_single_file_format_is_moved_into_records(tmp_path):
    history = store(tmp_path)
    legacy = history.blobs.root / (history.folder("cid").rstrip("/") + ".json")
    legacy.parent.mkdir(parents=True)
    legacy.write_text(json.dumps({"version": 1, "key": "cid", "persona": "老人设", "handled": {},
                                  "turns": [{"question": "q1", "answer": "a1", "msgId": "m1"},
                                            {"question": "q2", "answer": "a2", "msgId": "m2"}]}), "utf-8")
    conversation = history.load("cid", 5)
    assert [t["question"] for t in conversation.turns] == ["q1", "q2"] and conversation.persona == "老人设"
    assert not legacy.exists()
    history.add_turn("cid", "m3", 1_700_000_000_000, "q3", "a3")
    assert [t["question"] for t in history.load("cid", 5).turns] == ["q1", "q2", "q3"]


def test_group_history_is_shared_unless_per_sender():
    assert conversation_key("cid", "u1", per_sender=False) == conversation_key("cid", "u2", per_sender=False)
    assert conversation_key("cid", "u1", per_sender=True) != conversation_key("cid", "u2", per_sender=True)
    assert conversation_key("G|x", "y", per_sender=True) != conversation_key("G", "x|y", per_sender=True)
    assert conversation_key("cid", "u1", per_sender=False) == "cid"  # group history keeps its existing key
