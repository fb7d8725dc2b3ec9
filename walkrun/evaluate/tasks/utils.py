"""lm-eval hooks of walkrun's tasks (`!function utils.x` in the YAMLs); the code lives in
`walkrun.evaluate.scoring`, which grades with `walkrun.grading` and nothing else."""

from walkrun.evaluate.scoring import (  # noqa: F401
    doc_to_text,
    doc_to_text_plain,
    load_dataset,
    process_results,
)
