"""Model-run services (the only code of this app that writes). The public API:

- `model_run_start(*, catalog, user, algorithms=None, rules=None, budget_s=60) -> ModelRun`
- `model_run_cancel(*, run, user) -> CancelOutcome`
- `rules_validate(*, catalog, data) -> dict` (what a rules form posts, checked)
- `algorithms_available() -> list[str]`
- task bodies: `model_run_run`, `model_run_score_batch`, `model_run_finish`; `model_runs_prune`

See `runs.py` for the job's steps, chord vs inline scoring and what reruns do.
"""

from recommendations.services.rules import rules_validate
from recommendations.services.runs import (
    ModelRunActive,
    ModelRunError,
    algorithms_available,
    model_run_cancel,
    model_run_fail,
    model_run_finish,
    model_run_run,
    model_run_score_batch,
    model_run_start,
    model_runs_prune,
    scoring_mode,
)

__all__ = [
    "ModelRunActive",
    "ModelRunError",
    "algorithms_available",
    "model_run_cancel",
    "model_run_fail",
    "model_run_finish",
    "model_run_run",
    "model_run_score_batch",
    "model_run_start",
    "model_runs_prune",
    "rules_validate",
    "scoring_mode",
]
