"""W&B's cross-validation pattern: each fold in a process of its own calls wandb.init and logs; the
trial's own run logs the folds' mean (one fold forked, one spawned)."""

import multiprocessing

import wandb


def fold(k: int, x: float) -> float:
    run = wandb.init(group="cv", job_type="fold", name=f"fold-{k}")
    loss = x + k
    run.log({"loss": loss * 100})  # a fold's run: not the trial's metric
    run.finish()
    return loss


if __name__ == "__main__":
    run = wandb.init()
    x = wandb.config.x
    losses = []
    for k, method in enumerate(("fork", "spawn")):
        with multiprocessing.get_context(method).Pool(1) as pool:
            losses.append(pool.apply(fold, (k, x)))
    run.log({"loss": sum(losses) / len(losses)})
    run.finish()
