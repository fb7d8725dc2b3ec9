"""`walkrun eval` with the hf backend: every sample stored, token counts exact, re-runs resume."""

from __future__ import annotations

import torch

TASKS = ("aime24", "amc23", "math500")
MAX_NEW = 48


def _replay(model_dir, problems, seed_base=1234, k=2):
    """What model.generate produces for each problem under the runner's seeding (chunk size 1:
    torch seeded with seed + doc index, then the k repeats drawn one after another)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from walkrun.evaluate.scoring import doc_to_text

    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    out = {}
    for i, p in enumerate(problems):
        prompt = tok.apply_chat_template(
            [{"role": "user", "content": doc_to_text(p)}], tokenize=False, add_generation_prompt=True
        )
        ids = tok(prompt, return_tensors="pt")
        torch.manual_seed(seed_base + i)
        for j in range(k):
            gen = model.generate(
                **ids,
                do_sample=True,
                temperature=0.6,
                top_p=0.95,
                max_new_tokens=MAX_NEW,
                pad_token_id=tok.pad_token_id,
            )[0, ids["input_ids"].shape[1] :].tolist()
            eos = next((m + 1 for m, t in enumerate(gen) if t == tok.eos_token_id), None)
            n = eos or len(gen)
            out[(str(p["id"]), j)] = (n, "stop" if eos else "length", tok.decode(gen[:n], skip_special_tokens=True))
    return out


def test_eval_stores_18_samples_whose_token_counts_match_model_generate(tiny_model, db_path, db_url, cli, query):
    from walkrun import problem_sets

    torch.set_num_threads(1)
    code, out, err = cli(
        "eval",
        "--model",
        tiny_model,
        "--tasks",
        ",".join(TASKS),
        "--limit",
        3,
        "--samples",
        2,
        "--max-new-tokens",
        MAX_NEW,
        "--chunk-size",
        1,
        "--batch-size",
        1,
        "--threads",
        1,
        "--db",
        db_url,
        "-q",
    )
    assert code == 0, err
    rows = query(
        db_path,
        """select e.task, s.problem_id, s.sample_index, s.n_tokens, s.finish_reason, s.response,
                                    e.k, e.temperature, e.top_p, e.backend, e.status
                             from sample s join eval_run e on e.id = s.eval_run_id""",
    )
    assert len(rows) == 18
    assert {r[0] for r in rows} == set(TASKS)
    assert all(r[6:] == (2, 0.6, 0.95, "hf", "done") for r in rows)

    by_key = {(r[0], r[1], r[2]): r for r in rows}
    for task in TASKS:
        replay = _replay(tiny_model, problem_sets.load(task, limit=3))
        for (pid, j), (n, reason, text) in replay.items():
            row = by_key[(task, pid, j)]
            assert row[3] == n, f"{task}/{pid}#{j}: stored {row[3]} tokens, model.generate made {n}"
            assert row[4] == reason
            assert row[5] == text
    assert {r[4] for r in rows} == {"stop", "length"}  # both endings occur with these seeds

    # The printed table agrees with the stored rows.
    line = next(ln for ln in out.splitlines() if ln.startswith("math500"))
    tokens = [r[3] for r in rows if r[0] == "math500"]
    assert f"{sum(tokens) / len(tokens):.1f}" in line.split()

    # Same command again: nothing to generate, nothing rewritten.
    before = query(db_path, "select id, status, finished_at from eval_run order by id")
    code, out, err = cli(
        "eval",
        "--model",
        tiny_model,
        "--tasks",
        ",".join(TASKS),
        "--limit",
        3,
        "--samples",
        2,
        "--max-new-tokens",
        MAX_NEW,
        "--chunk-size",
        1,
        "--batch-size",
        1,
        "--db",
        db_url,
        "-q",
    )
    assert code == 0, err
    assert "already evaluated" in err
    assert query(db_path, "select count(*) from sample") == [(18,)]
    assert query(db_path, "select id, status, finished_at from eval_run order by id") == before


def test_synthetic_task_evaluates_a_synthetic_model(tmp_path, db_path, db_url, cli, query):
    from walkrun import synthetic

    model = synthetic.build_model(tmp_path / "synthetic_model")
    code, out, err = cli(
        "eval",
        "--model",
        model,
        "--tasks",
        "synthetic",
        "--limit",
        3,
        "--samples",
        2,
        "--max-new-tokens",
        16,
        "--threads",
        1,
        "--db",
        db_url,
        "-q",
    )
    assert code == 0, err
    assert "plain prompt" in err
    rows = query(
        db_path,
        """select e.task, e.temperature, e.prompt_template, s.n_tokens, s.finish_reason
                             from sample s join eval_run e on e.id = s.eval_run_id""",
    )
    assert len(rows) == 6
    assert all(r[:3] == ("synthetic", 1.0, "synthetic-plain+plain") for r in rows)
    assert all(1 <= r[3] <= 16 and (r[4] == "stop" or r[3] == 16) for r in rows)


def test_data_flag_feeds_both_the_plan_and_lm_eval(tiny_model, tmp_path, db_path, db_url, cli, query):
    import json

    data = tmp_path / "data"
    data.mkdir()
    rows = [{"id": f"mine-{i}", "problem": f"What is {i}+{i}?", "answer": str(2 * i), "source": "test"} for i in (1, 2)]
    (data / "aime2024.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    code, out, err = cli(
        "eval",
        "--model",
        tiny_model,
        "--tasks",
        "aime24",
        "--samples",
        1,
        "--max-new-tokens",
        4,
        "--data",
        data,
        "--threads",
        1,
        "--db",
        db_url,
        "-q",
    )
    assert code == 0, err
    assert query(db_path, "select problem_id, gold from sample order by problem_id") == [
        ("mine-1", "2"),
        ("mine-2", "4"),
    ]
