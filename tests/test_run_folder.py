"""The run folder between training and the watcher: its record, "is this run finished", and who
the run is, for both backends' folders (and OpenRLHF folders written before they had a record)."""

from __future__ import annotations

from walkrun import run_folder


def test_a_local_run_is_named_before_training_and_finished_after(tmp_path):
    run_dir = tmp_path / "s2"
    run_dir.mkdir()
    assert run_folder.run_info(run_dir) == ("s2", "train", "local")  # nothing recorded yet
    rec = run_folder.start_record(run_dir, "demo", "local", "local-stage2", "stage2", {"lr": 1e-4})
    assert run_folder.run_info(run_dir) == ("demo", "stage2", "local")
    assert run_folder.run_info(run_dir, run="other", stage="control") == ("other", "control", "local")
    assert not run_folder.is_finished(run_dir) and not run_folder.has_final_model(run_dir)

    run_folder.finish_record(run_dir, rec, checkpoints=["global_step4_hf"], wall_seconds=1.5)
    back = run_folder.read_record(run_dir)
    assert back["config"] == {"lr": 1e-4} and back["checkpoints"] == ["global_step4_hf"] and back["finished_at"]
    assert run_folder.is_finished(run_dir)
    assert not run_folder.has_final_model(run_dir)  # finished, but its final model is not there
    (run_dir / "config.json").write_text("{}")
    assert run_folder.has_final_model(run_dir)


def test_an_openrlhf_folder_is_read_from_its_config_and_finished_by_its_final_model(tmp_path):
    run_dir = tmp_path / "conciser-stage1"
    run_dir.mkdir()
    (run_dir / "config.yaml").write_text("name: conciser-stage1\nstage: stage1\npretrain: Qwen/Qwen2.5-Math-7B\n")
    assert run_folder.run_info(run_dir) == ("conciser-stage1", "stage1", "openrlhf")
    assert not run_folder.is_finished(run_dir)
    (run_dir / run_folder.FINAL_DIR).mkdir()
    (run_dir / run_folder.FINAL_DIR / "config.json").write_text("{}")
    assert run_folder.is_finished(run_dir)
    (run_dir / run_folder.RUN_FILE).write_text("not json")  # unreadable record: as if there were none
    assert run_folder.read_record(run_dir) == {} and run_folder.run_info(run_dir)[2] == "openrlhf"


def test_checkpoints_are_found_by_step_also_one_level_down_never_in_hidden_folders(tmp_path):
    for rel in ("global_step10_hf", "ckpt/global_step2_hf", ".tmp/global_step3_hf", "global_step4_hf.tmp-1"):
        (tmp_path / rel).mkdir(parents=True)
    assert run_folder.find_checkpoints(tmp_path) == [
        (2, (tmp_path / "ckpt" / "global_step2_hf").resolve()),
        (10, (tmp_path / "global_step10_hf").resolve()),
    ]
    assert run_folder.checkpoint_dir(tmp_path, 10) == tmp_path / "global_step10_hf"
