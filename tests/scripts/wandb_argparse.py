"""A W&B script as W&B's docs write it with argparse: wandb.init(config=args), then wandb.log per epoch."""

import argparse

import wandb

parser = argparse.ArgumentParser()
parser.add_argument("--lr", type=float, default=0.1)
parser.add_argument("--epochs", type=int, default=3)
args = parser.parse_args()

run = wandb.init(project="sweeps-test", config=args)
for epoch in range(wandb.config.epochs):
    loss = wandb.config.lr * 10 / (epoch + 1)
    wandb.log({"loss": loss, "lr_seen": wandb.config.lr, "epoch": epoch})
run.finish()
