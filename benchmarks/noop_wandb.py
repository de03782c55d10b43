"""The no-op trial, written for W&B: wandb.init, one wandb.log of its metric, nothing else."""

import wandb

run = wandb.init()
run.log({"loss": wandb.config.x})
