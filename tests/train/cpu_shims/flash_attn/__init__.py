"""CPU-ONLY TEST AID, not flash-attn: an import stub so `openrlhf.cli.train_ppo_ray` and
`openrlhf.trainer.ppo_utils.experience_maker` can be imported on a machine without CUDA.

flash-attn 2.8.3 only builds with CUDA, and OpenRLHF 0.11.2 imports it at module level
(`openrlhf/models/ring_attn_utils.py`). Only the tests' subprocesses put this folder on
PYTHONPATH (flag validation, the L-GRPO hook test); nothing here is ever called, and every
function raises if it is. GPU clusters install the real flash-attn.
"""

__version__ = "0.0.0+walkrun.cpu.stub"
