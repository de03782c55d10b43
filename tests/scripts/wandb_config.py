"""A W&B script that reads its parameters from wandb.config only (no argparse), nested ones included,
and logs with run.log(..., step=...); what it read goes to the file $SEEN_FILE names."""

import json
import os

import wandb

run = wandb.init()
seen = {
    "lr": wandb.config.lr,
    "units": wandb.config["units"],
    "momentum": wandb.config.optimizer["momentum"],
}
json.dump(seen, open(os.environ["SEEN_FILE"], "w"))
for step in range(4):
    run.log({"val_loss": seen["lr"] + 1.0 / (step + 1), "units": seen["units"]}, step=step * 10)
