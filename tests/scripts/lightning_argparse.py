"""A Lightning script for the tests, on `pytorch_lightning` (the example uses `lightning.pytorch`):
argparse with dotted option names (`--model.lr`), a tiny model on random data, `val_loss` logged
with `self.log`. It prints the metric itself only with `--print=epoch` (at each validation epoch
end) or `--print=end` (once, after fit); with `--global_var=1` it leaves a global `val_loss = -1`.
`--sleep` slows each training step down; `--validate_after=1` calls trainer.validate() after fit."""

import argparse
import time

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import ModelCheckpoint
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

parser = argparse.ArgumentParser()
parser.add_argument("--model.lr", dest="lr", type=float, default=0.1)
parser.add_argument("--trainer.max_epochs", dest="max_epochs", type=int, default=5)
parser.add_argument("--print", choices=["none", "epoch", "end"], default="none")
parser.add_argument("--global_var", type=int, default=0)
parser.add_argument("--sleep", type=float, default=0.0)
parser.add_argument("--validate_after", type=int, default=0, help="1: trainer.validate() after fit")
args = parser.parse_args()


class Tiny(pl.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.layer = nn.Linear(4, 1)

    def training_step(self, batch, batch_idx):
        time.sleep(args.sleep)
        x, y = batch
        return nn.functional.mse_loss(self.layer(x), y)

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val_loss", nn.functional.mse_loss(self.layer(x), y))

    def on_validation_epoch_end(self):
        if args.print == "epoch" and not self.trainer.sanity_checking:
            print(f"epoch={self.current_epoch} val_loss={float(self.trainer.callback_metrics['val_loss']) + 100}")

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=args.lr)


torch.set_num_threads(1)
torch.manual_seed(0)
x = torch.randn(64, 4)
data = TensorDataset(x, x.sum(dim=1, keepdim=True))
trainer = pl.Trainer(
    max_epochs=args.max_epochs,
    accelerator="cpu",
    logger=False,
    enable_progress_bar=False,
    enable_model_summary=False,
    callbacks=ModelCheckpoint(monitor="val_loss"),
)
model = Tiny()
trainer.fit(model, DataLoader(data, batch_size=16), DataLoader(data, batch_size=64))
if args.validate_after:
    trainer.validate(model, DataLoader(data, batch_size=64), verbose=False)
if args.print == "end":
    print(f"val_loss={float(trainer.callback_metrics['val_loss']) + 1000}")
if args.global_var:
    val_loss = -1.0
