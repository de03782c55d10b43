"""A Lightning script for the resume tests: 10 epochs (``--epochs``) of a tiny model whose training
draws random numbers every epoch (shuffled batches, dropout), so that a run continued from a
checkpoint ends on the same value as an uninterrupted one only if it continues exactly.
``--sleep`` slows each training step down; ``--init_from`` fits from a checkpoint of the script's
choosing. It knows nothing of Sweeps."""

import argparse
import time

import torch
from lightning.pytorch import LightningModule, Trainer, seed_everything
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

parser = argparse.ArgumentParser()
parser.add_argument("--lr", type=float, default=0.05)
parser.add_argument("--epochs", type=int, default=10)
parser.add_argument("--sleep", type=float, default=0.0)
parser.add_argument("--init_from", default=None)  # a checkpoint to fit from, the script's own choice
parser.add_argument("--seed", type=int, default=0)
args = parser.parse_args()


class Noisy(LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(4, 16), nn.Dropout(0.3), nn.Linear(16, 1))

    def training_step(self, batch, batch_idx):
        time.sleep(args.sleep)
        x, y = batch
        return nn.functional.mse_loss(self.net(x), y)

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val_loss", nn.functional.mse_loss(self.net(x), y))

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=args.lr, momentum=0.9)


torch.set_num_threads(1)
seed_everything(args.seed)
x = torch.randn(96, 4, generator=torch.Generator().manual_seed(0))  # the same data whatever the seed
data = TensorDataset(x, x.sum(dim=1, keepdim=True))
trainer = Trainer(
    max_epochs=args.epochs, accelerator="auto", logger=False, enable_progress_bar=False, enable_model_summary=False
)
trainer.fit(
    Noisy(), DataLoader(data, batch_size=16, shuffle=True), DataLoader(data, batch_size=96), ckpt_path=args.init_from
)
