"""Where a training setting comes from: the source kinds every preset value, reward parameter,
estimator and group filter is labelled with.

A provenance note is "KIND: detail", KIND one of SOURCE_KINDS:

* "paper A" / "paper A code": ConciseR (Song & Zheng, arXiv:2505.21178): its text / its released
  repository (the data preprocessing that defines the training prompt);
* "paper B" / "paper B code": Fatemi et al. (arXiv:2504.05185): its text / its released scripts
  and the OpenRLHF fork they run on;
* "DAPO": DAPO's standard values (arXiv:2503.14476), which paper A follows without numbers;
* "method paper" / "method code": the paper / released code of the method a length reward comes
  from (Kimi k1.5, L1, ThinkPrune, GRPO-LEAD, ...);
* "ours": our choice, with the reason (also: a value nobody could verify, said so in the note).

A value without a note is ours.
"""

from __future__ import annotations

from walkrun.settings import WalkrunError

# Longer kinds first: "paper A code" must not be read as "paper A".
SOURCE_KINDS = ("paper A code", "paper A", "paper B code", "paper B", "DAPO", "method code", "method paper", "ours")


def source_kind(note: str | None) -> str:
    """The SOURCE_KINDS entry a provenance note starts with ("ours" for no note)."""
    if not note:
        return "ours"
    for kind in SOURCE_KINDS:
        if note == kind or note.startswith(kind + ":"):
            return kind
    raise WalkrunError(f"provenance {note!r} must start with one of: {', '.join(k + ':' for k in SOURCE_KINDS)}")
