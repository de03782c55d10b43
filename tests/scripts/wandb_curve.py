"""A W&B script logging a learning curve (one value per epoch) that a pruner can stop."""

import time

import wandb

run = wandb.init()
for epoch in range(1, wandb.config.epochs + 1):
    wandb.log({"loss": wandb.config.x + 10.0 / epoch, "epoch": epoch})
    time.sleep(wandb.config.get("sleep", 0.02))
