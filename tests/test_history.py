import json
import threading

from shared.reply.oss.history import FileHistoryStore, conversation_key


def test_turns_are_kept_per_conversation(tmp_path):
    store = FileHistoryStore(tmp_path)
    store.record_turn("cid-a", "m1", "问A", "答A", keep=5)
    store.record_turn("cid-b", "m2", "问B", "答B", keep=5)
    assert store.read("cid-a").messages(5) == [{"role": "user", "content": "问A"},
                                                {"role": "assistant", "content": "答A"}]
    assert [t["question"] for t in store.read("cid-b").turns] == ["问B"]


def test_only_the_last_history_length_turns_are_kept(tmp_path):
    store = FileHistoryStore(tmp_path)
    for i in range(8):
        store.record_turn("cid", f"m{i}", f"q{i}", f"a{i}", keep=3)
    assert [t["question"] for t in store.read("cid").turns] == ["q5", "q6", "q7"]


def test_history_file_is_plain_json_named_by_hash(tmp_path):
    store = FileHistoryStore(tmp_path)
    store.record_turn("cid", "m1", "q", "a", keep=5)
    data = json.loads(store.path_for("cid").read_text("utf-8"))
    assert data["key"] == "cid" and data["turns"][0]["answer"] == "a"


def test_hostile_ids_cannot_escape_the_mount(tmp_path):
    store = FileHistoryStore(tmp_path / "mount")
    for key in ("../../etc/passwd", "/abs/path", "a/../../b", "..", "名字/带斜杠", "\x00"):
        store.record_turn(key, "m", "q", "a", keep=1)
        assert store.path_for(key).parent == tmp_path / "mount" / "dingbot" / "history"
    assert not (tmp_path / "etc").exists()


def test_corrupt_history_is_moved_aside_and_treated_as_empty(tmp_path):
    store = FileHistoryStore(tmp_path)
    store.record_turn("cid", "m1", "q", "a", keep=5)
    store.path_for("cid").write_text("{half a file", "utf-8")
    assert store.read("cid").turns == []
    assert len(list(store.directory.glob("*.corrupt-*.json"))) == 1
    store.record_turn("cid", "m2", "q2", "a2", keep=5)
    assert [t["question"] for t in store.read("cid").turns] == ["q2"]


def test_writes_leave_no_temporary_files(tmp_path):
    store = FileHistoryStore(tmp_path)
    for i in range(5):
        store.record_turn("cid", f"m{i}", "q", "a", keep=5)
    assert sorted(p.suffix for p in store.directory.iterdir()) == [".json", ".lock"]


def test_concurrent_turns_of_one_conversation_are_all_kept(tmp_path):
    store = FileHistoryStore(tmp_path)
    threads = [threading.Thread(target=store.record_turn, args=("cid", f"m{i}", f"q{i}", "a", 50)) for i in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(t["question"] for t in store.read("cid").turns) == sorted(f"q{i}" for i in range(20))


def test_clear_empties_turns_and_remembers_the_message(tmp_path):
    store = FileHistoryStore(tmp_path)
    store.record_turn("cid", "m1", "q", "a", keep=5)
    store.clear("cid", "m2")
    conversation = store.read("cid")
    assert conversation.turns == [] and "m2" in conversation.handled


def test_group_history_is_shared_unless_per_sender():
    assert conversation_key("cid", "u1", per_sender=False) == conversation_key("cid", "u2", per_sender=False)
    assert conversation_key("cid", "u1", per_sender=True) != conversation_key("cid", "u2", per_sender=True)
